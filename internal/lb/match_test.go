package lb

import (
	"net"
	"testing"
)

func TestWildcard(t *testing.T) {
	tests := []struct {
		pat, s string
		fold   bool
		want   bool
	}{
		{"*.example.com", "www.example.com", true, true},
		{"*.example.com", "WWW.Example.COM", true, true},
		{"*.example.com", "example.com", true, false},
		{"/img/*", "/img/a/b.png", false, true},
		{"/img/*", "/IMG/a.png", false, false},
		{"/a?c", "/abc", false, true},
		{"/a?c", "/ac", false, false},
		{"*", "", false, true},
		{"a*b*c", "aXXbYYc", false, true},
		{"a*b*c", "aXXbYY", false, false},
	}
	for _, tt := range tests {
		if got := Wildcard(tt.pat, tt.s, tt.fold); got != tt.want {
			t.Errorf("Wildcard(%q,%q)=%v want %v", tt.pat, tt.s, got, tt.want)
		}
	}
}

func TestRoute(t *testing.T) {
	act := func(n string) Action {
		return Action{Type: ActionFixed, Fixed: FixedResponse{StatusCode: 200, Body: n}}
	}
	l := &Listener{DefaultAction: act("default"), Rules: []Rule{
		{Priority: 5, Conditions: []Condition{{Field: FieldHostHeader, Values: []string{"api.*"}}, {Field: FieldPathPattern, Values: []string{"/v1/*"}}}, Action: act("api-v1")},
		{Priority: 10, Conditions: []Condition{{Field: FieldHostHeader, Values: []string{"api.*"}}}, Action: act("api")},
		{Priority: 3, Conditions: []Condition{{Field: FieldMethod, Values: []string{"DELETE"}}}, Action: act("delete")},
		{Priority: 20, Conditions: []Condition{{Field: FieldHTTPHeader, HeaderName: "X-Canary", Values: []string{"y*"}}}, Action: act("canary")},
		{Priority: 30, Conditions: []Condition{{Field: FieldQueryString, Query: []KeyValue{{Key: "ver", Value: "2"}}}}, Action: act("v2")},
		{Priority: 40, Conditions: []Condition{{Field: FieldSourceIP, Values: []string{"10.0.0.0/8"}}}, Action: act("internal")},
	}}
	hdr := func(m map[string]string) func(string) (string, bool) {
		return func(n string) (string, bool) { v, ok := m[n]; return v, ok }
	}
	tests := []struct {
		name string
		r    Request
		want string
	}{
		{"default", Request{Method: "GET", Host: "www.x", Path: "/"}, "default"},
		{"host and path, lower priority number wins", Request{Method: "GET", Host: "API.x", Path: "/v1/users"}, "api-v1"},
		{"host only", Request{Method: "GET", Host: "api.x", Path: "/v2"}, "api"},
		{"method beats host", Request{Method: "DELETE", Host: "api.x", Path: "/v1/x"}, "delete"},
		{"method is case-sensitive", Request{Method: "delete", Host: "w", Path: "/"}, "default"},
		{"header value case-insensitive", Request{Method: "GET", Host: "w", Path: "/", Header: hdr(map[string]string{"X-Canary": "YES"})}, "canary"},
		{"query", Request{Method: "GET", Host: "w", Path: "/", RawQuery: "a=1&ver=2"}, "v2"},
		{"query no match", Request{Method: "GET", Host: "w", Path: "/", RawQuery: "ver=3"}, "default"},
		{"source ip", Request{Method: "GET", Host: "w", Path: "/", SourceIP: net.ParseIP("10.1.2.3")}, "internal"},
		{"path case-sensitive", Request{Method: "GET", Host: "api.x", Path: "/V1/x"}, "api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Route(l, &tt.r).Fixed.Body; got != tt.want {
				t.Errorf("got %q want %q", got, tt.want)
			}
		})
	}
}

func TestRedirectURL(t *testing.T) {
	r := &Request{Host: "example.com", Path: "/a/b", RawQuery: "x=1"}
	tests := []struct {
		rd   Redirect
		want string
	}{
		{Redirect{Protocol: "HTTPS", Port: "443"}, "https://example.com/a/b?x=1"},
		{Redirect{Host: "new.#{host}", Path: "/v2/#{path}"}, "http://new.example.com:8080/v2/a/b?x=1"},
		{Redirect{Query: "y=2&#{query}"}, "http://example.com:8080/a/b?y=2&x=1"},
	}
	for _, tt := range tests {
		if got := RedirectURL(tt.rd, r, "HTTP", "8080"); got != tt.want {
			t.Errorf("%+v: got %q want %q", tt.rd, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []Config{
		{Listeners: []Listener{{DefaultAction: forwardTo("nope")}}},
		{Listeners: []Listener{{DefaultAction: Action{Type: "bogus"}}}},
		{Listeners: []Listener{{DefaultAction: Action{Type: ActionRedirect, Redirect: Redirect{StatusCode: 307}}}}},
		{Listeners: []Listener{{DefaultAction: Action{Type: ActionFixed, Fixed: FixedResponse{StatusCode: 200}},
			Rules: []Rule{{Priority: 0, Action: Action{Type: ActionFixed, Fixed: FixedResponse{StatusCode: 200}}}}}}},
	}
	for i, c := range bad {
		if c.Validate() == nil {
			t.Errorf("config %d: no error", i)
		}
	}
}
