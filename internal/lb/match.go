package lb

import (
	"net"
	"net/url"
	"slices"
	"strings"
)

// Request is what rule matching looks at.
type Request struct {
	Method   string
	Host     string // without port
	Path     string
	RawQuery string
	Header   func(name string) (string, bool)
	SourceIP net.IP
}

// Wildcard reports whether s matches pattern with ALB's wildcards: *
// matches any run of characters, ? exactly one.
func Wildcard(pattern, s string, fold bool) bool {
	if fold {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		if p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]) {
			p++
			i++
		} else if p < len(pattern) && pattern[p] == '*' {
			star, mark = p, i
			p++
		} else if star >= 0 {
			p = star + 1
			mark++
			i = mark
		} else {
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Match reports whether r satisfies condition c.
func (c Condition) Match(r *Request) bool {
	switch c.Field {
	case FieldHostHeader:
		return slices.ContainsFunc(c.Values, func(v string) bool { return Wildcard(v, r.Host, true) })
	case FieldPathPattern:
		return slices.ContainsFunc(c.Values, func(v string) bool { return Wildcard(v, r.Path, false) })
	case FieldMethod:
		return slices.Contains(c.Values, r.Method)
	case FieldHTTPHeader:
		if r.Header == nil {
			return false
		}
		h, ok := r.Header(c.HeaderName)
		if !ok {
			return false
		}
		return slices.ContainsFunc(c.Values, func(v string) bool { return Wildcard(v, h, true) })
	case FieldQueryString:
		q, err := url.ParseQuery(r.RawQuery)
		if err != nil {
			return false
		}
		for _, kv := range c.Query {
			for k, vs := range q {
				if kv.Key != "" && !Wildcard(kv.Key, k, true) {
					continue
				}
				if slices.ContainsFunc(vs, func(v string) bool { return Wildcard(kv.Value, v, true) }) {
					return true
				}
			}
		}
		return false
	case FieldSourceIP:
		for _, v := range c.Values {
			_, n, err := net.ParseCIDR(v)
			if err == nil && r.SourceIP != nil && n.Contains(r.SourceIP) {
				return true
			}
		}
		return false
	}
	return false
}

// Route returns the action for r: the matching rule with the lowest
// priority, or the listener's default action.
func Route(l *Listener, r *Request) *Action {
	var best *Rule
	for i := range l.Rules {
		rule := &l.Rules[i]
		if best != nil && rule.Priority >= best.Priority {
			continue
		}
		ok := true
		for _, c := range rule.Conditions {
			if !c.Match(r) {
				ok = false
				break
			}
		}
		if ok {
			best = rule
		}
	}
	if best != nil {
		return &best.Action
	}
	return &l.DefaultAction
}

// RedirectURL renders a redirect action's location for r on a listener
// with protocol proto and port.
func RedirectURL(rd Redirect, r *Request, proto, port string) string {
	rep := strings.NewReplacer("#{protocol}", strings.ToLower(proto), "#{host}", r.Host, "#{port}", port,
		"#{path}", strings.TrimPrefix(r.Path, "/"), "#{query}", r.RawQuery)
	or := func(v, d string) string {
		if v == "" {
			v = d
		}
		return rep.Replace(v)
	}
	scheme := strings.ToLower(or(rd.Protocol, strings.ToLower(proto)))
	host := or(rd.Host, r.Host)
	p := or(rd.Port, port)
	path := or(rd.Path, "/#{path}")
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	q := or(rd.Query, r.RawQuery)
	u := scheme + "://" + host
	if !(scheme == "http" && p == "80") && !(scheme == "https" && p == "443") && p != "" {
		u += ":" + p
	}
	u += path
	if q != "" {
		u += "?" + q
	}
	return u
}
