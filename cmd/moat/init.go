package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/examples/realtime"
)

func init() { register(newInitCommand) }

func newInitCommand() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Write the example stack (moat.yaml and a real-time app) into DIR",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			var written []string
			err := fs.WalkDir(realtime.Files, ".", func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				dst := filepath.Join(dir, path)
				if d.IsDir() {
					return os.MkdirAll(dst, 0o755)
				}
				if _, err := os.Stat(dst); err == nil && !force {
					return withCode(exitFailure, fmt.Errorf("%s exists; pass --force to overwrite it", dst))
				} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				b, err := realtime.Files.ReadFile(path)
				if err != nil {
					return err
				}
				if err := os.WriteFile(dst, b, 0o644); err != nil {
					return err
				}
				written = append(written, dst)
				return nil
			})
			if err != nil {
				return err
			}
			for _, w := range written {
				fmt.Fprintln(c.OutOrStdout(), w)
			}
			fmt.Fprintf(c.ErrOrStderr(), "next: moat validate -f %s && sudo moat up -f %[1]s\n", filepath.Join(dir, "moat.yaml"))
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	return c
}
