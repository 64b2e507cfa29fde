package dockertest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// services is the part of GET /api/v1/services the tests read.
type services struct {
	Services []struct {
		Name      string `json:"name"`
		Instances []struct {
			ID       string `json:"id"`
			Address  string `json:"address"`
			Routable bool   `json:"routable"`
		} `json:"instances"`
	} `json:"services"`
	Discovery struct {
		Provider   string  `json:"provider"`
		AgeSeconds float64 `json:"age_seconds"`
		Stale      bool    `json:"stale"`
		LastError  string  `json:"last_error"`
	} `json:"discovery"`
}

func getServices(client *http.Client, admin string) (services, error) {
	var s services
	resp, err := client.Get(admin + "/api/v1/services")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET /api/v1/services: %d", resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// routable returns the routable instances of service web as "id@address",
// sorted as the admin API sorts them.
func (s services) routable() []string {
	var out []string
	for _, svc := range s.Services {
		if svc.Name != "web" {
			continue
		}
		for _, in := range svc.Instances {
			if in.Routable {
				out = append(out, in.ID+"@"+in.Address)
			}
		}
	}
	return out
}

// routableByName reports, per demo backend name (backend-N), whether the
// instance web-backend-N is routable; absent names are not registered.
func (s services) routableByName() map[string]bool {
	out := map[string]bool{}
	for _, svc := range s.Services {
		if svc.Name != "web" {
			continue
		}
		for _, in := range svc.Instances {
			if i := strings.LastIndex(in.ID, "web-"); i >= 0 {
				out[in.ID[i+len("web-"):]] = in.Routable
			}
		}
	}
	return out
}
