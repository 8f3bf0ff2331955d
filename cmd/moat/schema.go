package main

import (
	"github.com/invopop/jsonschema"
	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/spec"
)

func init() { register(newSchemaCommand) }

// newSchemaCommand prints a JSON Schema of the stack file. Editors use it
// with a first line such as
//
//	# yaml-language-server: $schema=./moat.schema.json
func newSchemaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print a JSON Schema of the stack file, for editors",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return writeJSON(c.OutOrStdout(), stackSchema())
		},
	}
}

func stackSchema() *jsonschema.Schema {
	r := &jsonschema.Reflector{
		// yaml tags are the truth; json tags mirror them.
		RequiredFromJSONSchemaTags: false,
		AllowAdditionalProperties:  false,
		DoNotReference:             false,
	}
	s := r.Reflect(&spec.Stack{})
	s.ID = "https://moat.dev/schema/moat.schema.json"
	s.Title = "moat stack file"
	return s
}
