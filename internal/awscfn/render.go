package awscfn

import "github.com/moat-dev/moat/internal/plan"

func render(p *plan.Plan, opts Options) (*Template, error) {
	return &Template{Description: p.Description}, nil
}
