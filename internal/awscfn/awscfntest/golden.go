// Package awscfntest holds what tests of rendered templates share: the
// form of the golden files in internal/awscfn/testdata.
package awscfntest

import (
	"bytes"
	"encoding/json"
	"regexp"
)

var (
	bundleRE  = regexp.MustCompile(`(?s)<<'MOAT_BUNDLE'\n.*?\nMOAT_BUNDLE\n`)
	versionRE = regexp.MustCompile(`version [0-9a-f]{12}\n`)
)

// GoldenForm is a rendered template (JSON) as the golden files hold it:
// keys sorted, two-space indents, no HTML escaping, a final newline, and
// what changes with the example app's source (the inline bundle and the
// content version) replaced by placeholders, so that the golden files
// follow the renderer, not app.py.
func GoldenForm(template []byte) ([]byte, error) {
	var doc any
	if err := json.Unmarshal(template, &doc); err != nil {
		return nil, err
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			if x["Key"] == "moat:version" {
				x["Value"] = "$VERSION"
			}
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		case string:
			x = bundleRE.ReplaceAllString(x, "<<'MOAT_BUNDLE'\n$$BUNDLE\nMOAT_BUNDLE\n")
			return versionRE.ReplaceAllString(x, "version $$VERSION\n")
		}
		return v
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(walk(doc)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
