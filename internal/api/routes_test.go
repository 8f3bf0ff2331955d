package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestRoutePath(t *testing.T) {
	for _, tc := range []struct {
		route Route
		args  []string
		want  string
	}{
		{GetStatus, nil, "/v1/status"},
		{PostScale, []string{"web"}, "/v1/groups/web/scale"},
		{PostScale, []string{"a/b c"}, "/v1/groups/a%2Fb%20c/scale"},
		{GetLogs, []string{"i-0abc"}, "/v1/instances/i-0abc/logs"},
	} {
		if got := tc.route.Path(tc.args...); got != tc.want {
			t.Errorf("%s.Path(%q) = %q, want %q", tc.route.Pattern, tc.args, got, tc.want)
		}
	}
	for _, tc := range []struct {
		route Route
		args  []string
	}{{GetStatus, []string{"x"}}, {PostScale, nil}, {PostScale, []string{"a", "b"}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s.Path(%q) did not panic", tc.route.Pattern, tc.args)
				}
			}()
			tc.route.Path(tc.args...)
		}()
	}
}

// TestRoutesAreDistinctAndMatchTheirPaths registers every route on a
// ServeMux (which panics on conflicting patterns) and checks that each
// route's Path, with arguments that need escaping, reaches that route.
func TestRoutesAreDistinctAndMatchTheirPaths(t *testing.T) {
	mux := http.NewServeMux()
	for _, r := range Routes {
		mux.HandleFunc(r.ServeMuxPattern(), func(http.ResponseWriter, *http.Request) {})
	}
	for _, r := range Routes {
		args := make([]string, strings.Count(r.Pattern, "{"))
		for i := range args {
			args[i] = "x y/z"
		}
		req, err := http.NewRequest(r.Method, "http://moat"+r.Path(args...), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, pattern := mux.Handler(req); pattern != r.ServeMuxPattern() {
			t.Errorf("%s %s reaches %q, want %q", r.Method, r.Path(args...), pattern, r.ServeMuxPattern())
		}
	}
}
