package awscfn

import (
	"encoding/json"
	"strings"
	"sync"
)

var (
	createOnlyOnce sync.Once
	createOnly     map[string][]string
)

// CreateOnlyProperties returns the properties of a resource type that
// CloudFormation cannot change in place: a change to one replaces the
// resource. They come from the type's vendored provider schema
// (createOnlyProperties), as paths below Properties ("CidrBlock",
// "DnsOptions/PrivateDnsPreference"); ok is false for a type without a
// vendored schema.
func CreateOnlyProperties(typ string) (props []string, ok bool) {
	createOnlyOnce.Do(func() {
		createOnly = map[string][]string{}
		entries, err := schemaFS.ReadDir("schemas")
		if err != nil {
			return
		}
		for _, e := range entries {
			b, err := schemaFS.ReadFile("schemas/" + e.Name())
			if err != nil {
				continue
			}
			var s struct {
				TypeName             string   `json:"typeName"`
				CreateOnlyProperties []string `json:"createOnlyProperties"`
			}
			if json.Unmarshal(b, &s) != nil || s.TypeName == "" {
				continue
			}
			paths := []string{}
			for _, p := range s.CreateOnlyProperties {
				paths = append(paths, strings.TrimPrefix(p, "/properties/"))
			}
			createOnly[s.TypeName] = paths
		}
	})
	props, ok = createOnly[typ]
	return props, ok
}
