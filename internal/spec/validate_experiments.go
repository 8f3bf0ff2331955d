package spec

import (
	"fmt"
	"os"
)

// experiments checks the experiments' names and that their templates
// exist; the templates themselves are checked by package fis (moat
// validate, moat template and moat chaos do).
func (v *validator) experiments() {
	names(v, v.s.Experiments, "experiments", "experiment", func(e Experiment) string { return e.Name })
	for i, e := range v.s.Experiments {
		p := fmt.Sprintf("experiments[%d].template", i)
		if e.Template == "" {
			v.errf(p, "give the path of the experiment template's JSON, relative to the stack file", "experiment %s has no template", e.Name)
			continue
		}
		if _, err := os.Stat(v.path(e.Template)); err != nil {
			v.errf(p, "give the path of the experiment template's JSON, relative to the stack file (moat chaos scenario az-power-interruption --zone a --print writes one)",
				"cannot read experiment template %s", e.Template)
		}
	}
}
