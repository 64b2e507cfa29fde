package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"
)

// The catalog detector reads Consul's per-service summary, the answer
// behind the web UI's service list, when the agent offers it: unlike
// /v1/catalog/services it shows each service's instance count, nodes and
// check counts, so the difference between two answers names the service of
// an instance that joined or left even when its tags stay the same. It is
// an internal endpoint (no compatibility promise), so every answer is
// checked, and an absent endpoint or an unexpected answer makes the
// detector fall back to /v1/catalog/services for the rest of the run (the
// sweeps find instance changes then, as they always remain the backstop).

// uiServicesPath is Consul's per-service summary (agent/ui_endpoint.go,
// UIServices, v1.14): a blocking query on the nodes, services and checks
// tables (Internal.ServiceDump), filtered like a health query.
const uiServicesPath = "/v1/internal/ui/services"

// uiService is the part of one summary the detector reads.
type uiService struct {
	Kind           string
	Name           string
	PeerName       string
	Tags           []string
	Nodes          []string
	InstanceCount  *int
	ChecksPassing  int
	ChecksWarning  int
	ChecksCritical int
}

// serviceSummary is what the detector compares of one service between two
// answers: a change in any field means its instances or checks changed.
type serviceSummary struct {
	Instances, Passing, Warning, Critical int
	Nodes                                 string // sorted node names, joined
}

// catalogAnswer is one answer of the catalog detector. summaries is nil
// when it came from /v1/catalog/services, which has no per-service counts.
type catalogAnswer struct {
	services  map[string][]string // name -> tags, sorted
	summaries map[string]serviceSummary
}

// errUIUnusable marks an answer of the summary endpoint that the detector
// cannot trust; the detector falls back to /v1/catalog/services.
var errUIUnusable = errors.New("per-service summary unusable")

// fetchUIServices reads the per-service summary, decoding it with dec. An
// error wrapping errUIUnusable means the endpoint is absent or answered
// unexpectedly.
func fetchUIServices(client *api.Client, q *api.QueryOptions, dec *uiDecoder) (catalogAnswer, uint64, error) {
	// No server-side filter: it is evaluated on every instance of the
	// catalog before the summary is made, and doubled the answer's time
	// at 4,000 instances. Proxies are left out where the answer is read.
	var (
		list []uiService
		raw  rawBody
	)
	q = q.WithContext(context.WithValue(q.Context(), rawBodyKey{}, &raw))
	meta, err := client.Raw().Query(uiServicesPath, &list, q)
	if err == nil && raw.read {
		list, err = dec.decode(raw.body)
	}
	if err != nil {
		var status api.StatusError
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &status) && (status.Code == http.StatusNotFound || status.Code == http.StatusMethodNotAllowed):
			return catalogAnswer{}, 0, fmt.Errorf("%w: %s answered %d", errUIUnusable, uiServicesPath, status.Code)
		case errors.As(err, &syntax), errors.As(err, &typ):
			return catalogAnswer{}, 0, fmt.Errorf("%w: reading %s: %v", errUIUnusable, uiServicesPath, err)
		}
		return catalogAnswer{}, 0, err
	}
	if meta.ResultsFilteredByACLs {
		// The summary needs node:read as well as service:read: with a
		// token that lacks it, services would silently go missing.
		return catalogAnswer{}, 0, fmt.Errorf("%w: the token's ACLs filtered %s", errUIUnusable, uiServicesPath)
	}
	ans, err := uiCatalog(list)
	if err != nil {
		return catalogAnswer{}, 0, fmt.Errorf("%w: %v", errUIUnusable, err)
	}
	return ans, meta.LastIndex, nil
}

// uiDecoder decodes successive answers of the summary endpoint. Under
// churn most services' entries are byte for byte the same from one answer
// to the next, so it splits an answer into its entries and decodes only
// those it has not seen in the previous answer: at 1,000 services the
// whole answer (555 KB) took 10-30 ms to decode, as long as the agent
// took to make it. The zero value is ready; one detector owns it.
type uiDecoder struct {
	prev map[string]uiService // the previous answer's entries, raw -> decoded
}

// decode returns the entries of body. A body that is not an array of
// objects is decoded whole, for the verdict (and error) of encoding/json.
func (d *uiDecoder) decode(body []byte) ([]uiService, error) {
	elems, ok := splitObjects(body)
	if !ok {
		d.prev = nil
		var list []uiService
		err := json.Unmarshal(body, &list)
		return list, err
	}
	next := make(map[string]uiService, len(elems))
	list := make([]uiService, 0, len(elems))
	for _, e := range elems {
		svc, ok := d.prev[string(e)]
		if !ok {
			if err := json.Unmarshal(e, &svc); err != nil {
				d.prev = nil
				return nil, err
			}
		}
		next[string(e)] = svc
		list = append(list, svc)
	}
	d.prev = next
	return list, nil
}

// splitObjects splits a JSON array of objects into the objects' bytes,
// without decoding them. It reports false for anything else (a syntax
// error, another value, trailing data); the objects themselves are
// checked only for balanced braces and brackets outside strings, and
// json.Unmarshal checks each when it is decoded.
func splitObjects(b []byte) ([][]byte, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	var out [][]byte
	if i < len(b) && b[i] == ']' {
		return out, skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '{' {
			return nil, false
		}
		end, ok := objectEnd(b, i)
		if !ok {
			return nil, false
		}
		out = append(out, b[i:end])
		i = skipSpace(b, end)
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == ']':
			return out, skipSpace(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
}

// objectEnd returns the index just past the object that starts at b[i].
func objectEnd(b []byte, i int) (int, bool) {
	depth, inString := 0, false
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			switch c {
			case '\\':
				i++ // the escaped byte cannot end the string
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth == 0 {
				return i + 1, c == '}'
			}
		}
	}
	return 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// uiCatalog turns a summary answer into the detector's answer: the same
// name -> tags map /v1/catalog/services gives, and a summary per service.
// Left out, as /v1/catalog/services and the fetches leave them out:
// proxies and gateways, services imported from cluster peers (listed
// beside local ones), and entries without instances (the summary lists a
// sidecar's destination even when only the sidecar is registered). An
// entry without a name or an instance count, or a local name seen twice,
// is an error: the answer is not what the detector was written against.
func uiCatalog(list []uiService) (catalogAnswer, error) {
	ans := catalogAnswer{services: make(map[string][]string, len(list)), summaries: make(map[string]serviceSummary, len(list))}
	for i, s := range list {
		if s.Name == "" || s.InstanceCount == nil {
			return catalogAnswer{}, fmt.Errorf("entry %d has no Name or InstanceCount", i)
		}
		if s.Kind != "" || s.PeerName != "" || *s.InstanceCount == 0 {
			continue
		}
		if _, dup := ans.services[s.Name]; dup {
			return catalogAnswer{}, fmt.Errorf("service %q listed twice", s.Name)
		}
		tags := slices.Clone(s.Tags)
		if tags == nil {
			tags = []string{}
		}
		slices.Sort(tags)
		nodes := slices.Clone(s.Nodes)
		slices.Sort(nodes)
		ans.services[s.Name] = slices.Compact(tags)
		ans.summaries[s.Name] = serviceSummary{
			Instances: *s.InstanceCount, Passing: s.ChecksPassing, Warning: s.ChecksWarning, Critical: s.ChecksCritical,
			Nodes: strings.Join(nodes, "\x00"),
		}
	}
	return ans, nil
}

// summaryDiff returns the services present in both answers whose summary
// changed (an instance joined or left, moved node, or a check count
// moved), sorted. Services that appeared or left are catalogDiff's. A nil
// map on either side (no summary to compare with) reports nothing.
func summaryDiff(old, cur map[string]serviceSummary) []string {
	var out []string
	for name, s := range cur {
		if prev, ok := old[name]; ok && prev != s {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
