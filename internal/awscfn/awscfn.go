package awscfn

import (
	"github.com/moat-dev/moat/internal/plan"
)

// Options change how the template ships the application.
type Options struct {
	// AssetBucket and AssetKey, when both set, make the launch template's
	// user data fetch the application bundle from S3 instead of inlining
	// it; the template then takes the bucket and key as parameters (see
	// Asset) and grants the instances read access to that one object.
	AssetBucket, AssetKey string
}

// Asset is a local directory or file that moat deploy uploads before
// creating the stack; the template names it through two parameters.
type Asset struct {
	Name string // launch template name
	Dir  string // local directory or file to ship
	// ParamBucket and ParamKey are the template parameter names that take
	// the S3 bucket and key of the uploaded bundle.
	ParamBucket, ParamKey string
}

// Template is a rendered CloudFormation template. Resources, parameters and
// outputs keep their insertion order, so the output is deterministic.
type Template struct {
	Description string
	Parameters  []Parameter
	Resources   []Resource
	Outputs     []Output
	// Assets are bundles moat deploy must upload (empty when every app is
	// inlined in user data).
	Assets []Asset
}

// Parameter is a template parameter.
type Parameter struct {
	Name        string
	Type        string
	Default     string
	Description string
}

// Resource is one resource with its logical id.
type Resource struct {
	ID         string
	Type       string
	Properties map[string]any
	DependsOn  []string
	// UpdatePolicy and CreationPolicy are rendered as given.
	UpdatePolicy   map[string]any
	CreationPolicy map[string]any
}

// Output is a stack output.
type Output struct {
	Name        string
	Description string
	Value       any
}

// Finding is one validation problem: where (logical id and property path,
// e.g. "WebTargetGroup.Properties.HealthCheckPath") and what.
type Finding struct {
	Path    string
	Message string
}

func (f Finding) String() string { return f.Path + ": " + f.Message }

// Render turns the plan into a template.
func Render(p *plan.Plan, opts Options) (*Template, error) {
	return render(p, opts)
}

// JSON renders the template as indented JSON.
func (t *Template) JSON() ([]byte, error) {
	return indent(t.doc())
}

// YAML renders the template as YAML (long-form intrinsic functions).
func (t *Template) YAML() ([]byte, error) {
	return t.yaml()
}

// Validate checks the template offline and returns its findings, empty
// when the template is valid.
func Validate(t *Template) []Finding {
	return validate(t)
}
