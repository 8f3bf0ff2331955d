package main

import (
	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/spec"
)

func init() { register(newSchemaCommand) }

// newSchemaCommand prints the JSON Schema (draft 2020-12) of the stack
// file, generated from the Go types in package spec. Editors with the YAML
// language server (VS Code's YAML extension, Neovim's yamlls, JetBrains)
// use it for completion, hover docs and checking once moat.yaml starts with
//
//	# yaml-language-server: $schema=./moat.schema.json
//
// after `moat schema > moat.schema.json`.
func newSchemaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the stack file, for editors",
		Long: `Print the JSON Schema (draft 2020-12) of moat.yaml on stdout.

Save it and point your editor at it, e.g. with the YAML language server:
  moat schema > moat.schema.json
  # first line of moat.yaml:
  # yaml-language-server: $schema=./moat.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return writeJSON(c.OutOrStdout(), spec.Schema())
		},
	}
}
