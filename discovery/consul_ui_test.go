package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard-gw/switchyard/internal/testenv"
)

func TestUICatalog(t *testing.T) {
	n := func(v int) *int { return &v }
	tests := []struct {
		name    string
		list    []uiService
		want    catalogAnswer
		wantErr bool
	}{
		{"an empty answer is an empty catalog", []uiService{},
			catalogAnswer{services: map[string][]string{}, summaries: map[string]serviceSummary{}}, false},
		{"tags and nodes come back sorted and without duplicates in tags", []uiService{
			{Name: "web", Tags: []string{"b", "a", "b"}, Nodes: []string{"n2", "n1"}, InstanceCount: n(2), ChecksPassing: 1, ChecksCritical: 1},
		}, catalogAnswer{
			services:  map[string][]string{"web": {"a", "b"}},
			summaries: map[string]serviceSummary{"web": {Instances: 2, Passing: 1, Critical: 1, Nodes: "n1\x00n2"}},
		}, false},
		{"a service without tags has an empty tag list, as in /v1/catalog/services", []uiService{{Name: "db", InstanceCount: n(1)}},
			catalogAnswer{services: map[string][]string{"db": {}}, summaries: map[string]serviceSummary{"db": {Instances: 1}}}, false},
		{"a summary without instances (a sidecar's destination) is left out", []uiService{{Name: "db", InstanceCount: n(0)}},
			catalogAnswer{services: map[string][]string{}, summaries: map[string]serviceSummary{}}, false},
		{"proxies and gateways are left out", []uiService{
			{Name: "web", InstanceCount: n(1)}, {Kind: "connect-proxy", Name: "web-sidecar-proxy", InstanceCount: n(1)},
		}, catalogAnswer{services: map[string][]string{"web": {}}, summaries: map[string]serviceSummary{"web": {Instances: 1}}}, false},
		{"a service imported from a peer is left out, even under a local service's name", []uiService{
			{Name: "web", InstanceCount: n(1)}, {Name: "web", PeerName: "east", InstanceCount: n(2)}, {Name: "db", PeerName: "east", InstanceCount: n(1)},
		}, catalogAnswer{services: map[string][]string{"web": {}}, summaries: map[string]serviceSummary{"web": {Instances: 1}}}, false},
		{"an entry without a name is unexpected", []uiService{{InstanceCount: n(1)}}, catalogAnswer{}, true},
		{"an entry without an instance count is unexpected", []uiService{{Name: "web"}}, catalogAnswer{}, true},
		{"a service listed twice is unexpected", []uiService{{Name: "web", InstanceCount: n(1)}, {Name: "web", InstanceCount: n(1)}}, catalogAnswer{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := uiCatalog(tt.list)
			if (err != nil) != tt.wantErr {
				t.Fatalf("uiCatalog error = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("uiCatalog = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSummaryDiff(t *testing.T) {
	one := serviceSummary{Instances: 1, Passing: 1, Nodes: "n1"}
	tests := []struct {
		name     string
		old, cur map[string]serviceSummary
		want     []string
	}{
		{"no earlier answer reports nothing", nil, map[string]serviceSummary{"a": one}, nil},
		{"no summaries now (fallback) reports nothing", map[string]serviceSummary{"a": one}, nil, nil},
		{"an unchanged answer reports nothing", map[string]serviceSummary{"a": one}, map[string]serviceSummary{"a": one}, nil},
		{"an instance joining is reported", map[string]serviceSummary{"a": one, "b": one},
			map[string]serviceSummary{"a": {Instances: 2, Passing: 2, Nodes: "n1\x00n2"}, "b": one}, []string{"a"}},
		{"an instance leaving is reported", map[string]serviceSummary{"a": {Instances: 2, Passing: 2, Nodes: "n1\x00n2"}},
			map[string]serviceSummary{"a": one}, []string{"a"}},
		{"an instance moving node is reported", map[string]serviceSummary{"a": one},
			map[string]serviceSummary{"a": {Instances: 1, Passing: 1, Nodes: "n2"}}, []string{"a"}},
		{"a check count moving is reported", map[string]serviceSummary{"a": one},
			map[string]serviceSummary{"a": {Instances: 1, Critical: 1, Nodes: "n1"}}, []string{"a"}},
		{"services that appear or leave are left to catalogDiff", map[string]serviceSummary{"a": one},
			map[string]serviceSummary{"b": one}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summaryDiff(tt.old, tt.cur); !slices.Equal(got, tt.want) {
				t.Errorf("summaryDiff = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestConsulInstanceChangesWithUnchangedTags joins and removes instances
// of a service whose tags stay the same, the change /v1/catalog/services
// cannot show, on a real dev agent: read from the per-service summary, and
// through a proxy that makes the summary endpoint absent or answer
// unexpectedly, where the detector must fall back to /v1/catalog/services
// and the sweeps still find every change.
func TestConsulInstanceChangesWithUnchangedTags(t *testing.T) {
	c := testenv.StartConsul(t)
	client := c.Client(t)
	ports := loopbackListeners(t, 1)
	registerNodes(t, client, "ui-0", "ui-1")
	target, err := url.Parse("http://" + c.Addr)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		fault    http.HandlerFunc // answers the summary endpoint instead of the agent; nil: none
		fallback bool
	}{
		{"the summary names the service", nil, false},
		{"an absent summary endpoint falls back to the catalog", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Invalid URL path: not a recognized HTTP API endpoint", http.StatusNotFound)
		}, true},
		{"a summary of another shape falls back to the catalog", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Consul-Index", "7")
			w.Write([]byte(`{"Services":[]}`))
		}, true},
		{"a summary without counts falls back to the catalog", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Consul-Index", "7")
			w.Write([]byte(`[{"Name":"consul","Tags":[]}]`))
		}, true},
	}
	for b, budget := range []int{4, splitConnections} {
		for i, tt := range tests {
			t.Run(fmt.Sprintf("max_connections %d/%s", budget, tt.name), func(t *testing.T) {
				proxy := httputil.NewSingleHostReverseProxy(target)
				proxy.FlushInterval = -1
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if tt.fault != nil && r.URL.Path == uiServicesPath {
						tt.fault(w, r)
						return
					}
					proxy.ServeHTTP(w, r)
				}))
				t.Cleanup(srv.Close)
				conf := agentConfig(c)
				conf.Address = srv.Listener.Addr().String()

				name := fmt.Sprintf("ui-%d-%d", b, i)
				inst := func(k int) catalogInstance {
					return catalogInstance{node: []string{"ui-0", "ui-1"}[k%2], service: name, id: name + "-" + string(rune('0'+k)),
						port: ports[0], tags: []string{tagOn}, status: api.HealthPassing}
				}
				ids := func(ks ...int) []string {
					var out []string
					for _, k := range ks {
						out = append(out, inst(k).node+"/"+inst(k).id)
					}
					slices.Sort(out)
					return out
				}
				applyTxn(t, client, instanceOps(inst(0), false))
				a := runAgentSource(t, conf, func(o *ConsulOptions) { o.MaxConnections = budget })
				a.waitFor(20*time.Second, "the first instance", time.Now(), func(s Snapshot) bool { return slices.Equal(instanceIDs(s, name), ids(0)) })

				steps := []struct {
					what string
					ops  api.TxnOps
					want []string
				}{
					{"a second instance joins on another node", instanceOps(inst(1), false), ids(0, 1)},
					{"a third joins on the first node", instanceOps(inst(2), false), ids(0, 1, 2)},
					{"the first leaves", instanceOps(inst(0), true), ids(1, 2)},
					{"one leaves and one joins in one write", append(instanceOps(inst(1), true), instanceOps(inst(3), false)...), ids(2, 3)},
				}
				for _, st := range steps {
					applyTxn(t, client, st.ops)
					a.waitFor(20*time.Second, st.what, time.Now(), func(s Snapshot) bool { return slices.Equal(instanceIDs(s, name), st.want) })
				}
				if got := a.src.summaryOff.Load(); got != tt.fallback {
					t.Errorf("fell back to /v1/catalog/services: %v, want %v", got, tt.fallback)
				}
				if n := a.logs.count("instances joining or leaving are found by sweeps"); (n > 0) != tt.fallback {
					t.Errorf("fallback warnings logged: %d, want them only on a fallback", n)
				}
			})
		}
	}
}

func TestUIDecoder(t *testing.T) {
	bodies := []string{
		`[]`,
		` [ ] `,
		`null`,
		`[{"Name":"web","Tags":["a","b"],"Nodes":["n1"],"InstanceCount":1,"ChecksPassing":1}]`,
		// the same answer again, then one entry changed and one added
		`[{"Name":"web","Tags":["a","b"],"Nodes":["n1"],"InstanceCount":1,"ChecksPassing":1}]`,
		"[\n {\"Name\":\"db\",\"InstanceCount\":2},\n {\"Name\":\"web\",\"Tags\":[\"a\"],\"InstanceCount\":1,\"GatewayConfig\":{\"x\":[1,{}]}}\n]\n",
		// braces, brackets, quotes and escapes inside strings
		`[{"Name":"w}e]b{","Tags":["\"}", "\\", "[{", "\\\"]"],"InstanceCount":1}]`,
		`[{"Name":"a","InstanceCount":1},{"Name":"a","InstanceCount":1}]`,
	}
	var d uiDecoder
	for _, body := range bodies {
		var want []uiService
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("test body %q: %v", body, err)
		}
		got, err := d.decode([]byte(body))
		if err != nil || !reflect.DeepEqual(got, want) && len(got)+len(want) > 0 {
			t.Errorf("decode(%q) = %+v, %v; want %+v", body, got, err, want)
		}
	}
	for _, body := range []string{`[`, `[{"Name":"a"}`, `[{"Name":"a"},]`, `[{"Name":"a"}]x`, `[{"Name":"a"]}`, `[{"Name":1}]`, `[1]`, `{}`, `[{"Name":"a",}]`, `"x"`} {
		var want []uiService
		wantErr := json.Unmarshal([]byte(body), &want)
		_, err := d.decode([]byte(body))
		if err == nil || wantErr == nil {
			t.Errorf("decode(%q) error = %v, encoding/json's = %v; want both", body, err, wantErr)
			continue
		}
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		if !errors.As(err, &syntax) && !errors.As(err, &typ) {
			t.Errorf("decode(%q) error = %T %v, want a syntax or type error (the detector falls back on those)", body, err, err)
		}
	}
}

func TestUIDecoderReusesUnchangedEntries(t *testing.T) {
	var d uiDecoder
	a := `{"Name":"a","Tags":["x"],"InstanceCount":1}`
	b := `{"Name":"b","InstanceCount":2}`
	if _, err := d.decode([]byte("[" + a + "," + b + "]")); err != nil {
		t.Fatal(err)
	}
	first := d.prev[a].Tags
	got, err := d.decode([]byte("[" + a + `,{"Name":"b","InstanceCount":3}]`))
	if err != nil {
		t.Fatal(err)
	}
	if &got[0].Tags[0] != &first[0] {
		t.Error("an unchanged entry was decoded again")
	}
	if *got[1].InstanceCount != 3 {
		t.Errorf("changed entry decoded as %+v", got[1])
	}
	if _, ok := d.prev[b]; ok || len(d.prev) != 2 {
		t.Errorf("entries kept after the second answer: %d (the old b among them: %v)", len(d.prev), ok)
	}
}
