package h1

import (
	"testing"

	"golang.org/x/net/http/httpguts"
)

func TestConnectionTokensAreReadAsNetHTTPReadsThem(t *testing.T) {
	for _, tc := range []struct {
		name, value, token string
		want               bool
	}{
		{"a single token matches", "close", "close", true},
		{"tokens match without case", "Keep-Alive", "keep-alive", true},
		{"a token in a list matches", "keep-alive, Upgrade", "upgrade", true},
		{"spaces and tabs around a token are ignored", " \tupgrade\t ", "upgrade", true},
		{"an empty list holds nothing", "", "close", false},
		{"a token is not matched by a prefix", "closed", "close", false},
		{"a token is not matched inside another", "x-close-y", "close", false},
		{"a vertical tab is not white space", "upgrade\v", "upgrade", false},
		{"a long s is not an s", "clo\u017fe", "close", false},
		{"a Kelvin sign is not a k", "\u212aeep-alive", "keep-alive", false},
		{"empty elements are skipped", ",,close,", "close", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hasToken([]byte(tc.value), tc.token)
			oracle := httpguts.HeaderValuesContainsToken([]string{tc.value}, tc.token)
			if got != tc.want || oracle != tc.want {
				t.Fatalf("hasToken(%q, %q) = %v, httpguts says %v, want %v", tc.value, tc.token, got, oracle, tc.want)
			}
		})
	}
}
