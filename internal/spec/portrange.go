package spec

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/invopop/jsonschema"
	"go.yaml.in/yaml/v3"
)

// PortRange is a port (80) or an inclusive range ("8000-8010"). The zero
// value means all ports.
type PortRange struct {
	From, To int
}

// IsZero reports whether the range is unset (all ports).
func (p PortRange) IsZero() bool { return p.From == 0 && p.To == 0 }

func (p PortRange) String() string {
	switch {
	case p.IsZero():
		return "all"
	case p.From == p.To:
		return strconv.Itoa(p.From)
	default:
		return fmt.Sprintf("%d-%d", p.From, p.To)
	}
}

// ParsePortRange parses "80" or "8000-8010".
func ParsePortRange(s string) (PortRange, error) {
	s = strings.TrimSpace(s)
	lo, hi, isRange := strings.Cut(s, "-")
	from, err := strconv.Atoi(strings.TrimSpace(lo))
	if err != nil {
		return PortRange{}, fmt.Errorf("%q is not a port or a port range like 8000-8010", s)
	}
	to := from
	if isRange {
		to, err = strconv.Atoi(strings.TrimSpace(hi))
		if err != nil {
			return PortRange{}, fmt.Errorf("%q is not a port range like 8000-8010", s)
		}
	}
	return PortRange{From: from, To: to}, nil
}

// UnmarshalYAML accepts an integer or a "from-to" string.
func (p *PortRange) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("port must be a number or a range like 8000-8010")
	}
	r, err := ParsePortRange(n.Value)
	if err != nil {
		return err
	}
	*p = r
	return nil
}

// MarshalYAML writes the short form.
func (p PortRange) MarshalYAML() (any, error) {
	if p.From == p.To {
		return p.From, nil
	}
	return p.String(), nil
}

// MarshalJSON writes the short form.
func (p PortRange) MarshalJSON() ([]byte, error) {
	if p.From == p.To {
		return []byte(strconv.Itoa(p.From)), nil
	}
	return []byte(strconv.Quote(p.String())), nil
}

// JSONSchema describes the accepted forms for editors.
func (PortRange) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Description: "a port (80) or an inclusive range (\"8000-8010\")",
		OneOf: []*jsonschema.Schema{
			{Type: "integer", Minimum: "0", Maximum: "65535"},
			{Type: "string", Pattern: `^[0-9]{1,5}(-[0-9]{1,5})?$`},
		},
	}
}
