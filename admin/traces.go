package admin

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"html/template"
	"net/http"
)

// The recent-traces page renders in the browser what GET /api/v1/traces
// (telemetry's ring of recorded requests, served only when tracing is on)
// returns; the page itself holds no data.

//go:embed traces.html
var tracesHTML string

var tracesTemplate = template.Must(template.New("traces").Parse(tracesHTML))

// TracesPage serves the recent-traces page, with the dashboard's content
// security policy: only its own inline script and style run, and the
// script talks to this origin only.
func TracesPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		nonce := rand.Text()
		var buf bytes.Buffer
		if err := tracesTemplate.Execute(&buf, struct{ Nonce string }{nonce}); err != nil {
			http.Error(w, "traces page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		writePage(w, nonce, buf.Bytes())
	})
}
