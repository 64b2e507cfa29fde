package h1

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

func TestOnlyOriginFormAndHTTPAbsoluteFormTargetsAreForwardable(t *testing.T) {
	cases := []struct {
		line string
		want bool
	}{
		{"GET / HTTP/1.1", true},
		{"GET /a/../b?x=1 HTTP/1.1", true},
		{"GET http://a/b HTTP/1.1", true},
		{"GET HTTP://a HTTP/1.1", true},
		{"GET https://a/b?c HTTP/1.1", true},
		{"CONNECT a:443 HTTP/1.1", true},
		{"GET http:admin/secret HTTP/1.1", false},
		{"GET x:../../admin HTTP/1.1", false},
		{"GET example.com:80 HTTP/1.1", false},
		{"GET * HTTP/1.1", false},
		{"OPTIONS * HTTP/1.1", false},
		{"GET ftp://a/b HTTP/1.1", false},
		{"GET http://u:p@a/b HTTP/1.1", false},
		{"GET mailto:a@b HTTP/1.1", false},
		{"CONNECT /x HTTP/1.1", false},
	}
	for _, c := range cases {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(c.line + "\r\nHost: a\r\n\r\n")))
		if err != nil {
			if c.want {
				t.Errorf("%s: net/http refuses it: %v", c.line, err)
			}
			continue
		}
		if got := OriginForm(req); got != c.want {
			t.Errorf("%s: OriginForm %v, want %v", c.line, got, c.want)
		}
	}
}
