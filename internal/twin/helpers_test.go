package twin_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// The load and the views of the gateway the twin test reads.

type instance struct {
	ID       string `json:"id"`
	Routable bool   `json:"routable"`
}

// webInstances returns the instances of service web in the admin API.
func webInstances(client *http.Client, admin string) ([]instance, error) {
	resp, err := client.Get(admin + "/api/v1/services")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Services []struct {
			Name      string     `json:"name"`
			Instances []instance `json:"instances"`
		} `json:"services"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	for _, s := range body.Services {
		if s.Name == "web" {
			return s.Instances, nil
		}
	}
	return nil, nil
}

// upstreamAttempts sums switchyard_upstream_attempts_total over every
// outcome for the instance whose id ends in /serviceID.
func upstreamAttempts(client *http.Client, admin, serviceID string) (int, error) {
	resp, err := client.Get(admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %d", resp.StatusCode)
	}
	line := regexp.MustCompile(`^switchyard_upstream_attempts_total\{.*instance="[^"]*/` + regexp.QuoteMeta(serviceID) + `".*\} ([0-9.e+]+)$`)
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			v, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return 0, fmt.Errorf("metrics line %q: %v", sc.Text(), err)
			}
			total += int(v)
		}
	}
	return total, sc.Err()
}

// flagValue returns the value of --name in args ("true" for a flag
// without a value).
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if k, v, ok := strings.Cut(a, "="); ok && k == name {
			return v
		}
		if a == name {
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				return args[i+1]
			}
			return "true"
		}
	}
	return ""
}
