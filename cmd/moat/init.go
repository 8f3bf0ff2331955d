package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/examples/realtime"
)

func init() { register(newInitCommand) }

func newInitCommand() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Write the example stack (moat.yaml and a real-time app) into DIR",
		Long: `Write the bundled example into DIR (default: the current directory):
moat.yaml, the reference architecture, and app/, a small Python web app
that pushes live updates. Existing files are left alone unless --force.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			written, err := writeExample(dir, force)
			if err != nil {
				return err
			}
			for _, w := range written {
				fmt.Fprintln(c.OutOrStdout(), w)
			}
			file := filepath.Join(dir, "moat.yaml")
			fmt.Fprintf(c.ErrOrStderr(), `
next steps:
  moat validate %[1]s      check the stack file
  moat plan -f %[1]s       see the subnets, addresses, rules and endpoints
  sudo moat up -f %[1]s    run it, then open http://127.0.0.1:8080/
`, file)
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	return c
}

// writeExample copies the embedded example into dir. Unless force, it
// first checks that none of the files exists, so it writes all or nothing.
func writeExample(dir string, force bool) ([]string, error) {
	var files []string
	err := fs.WalkDir(realtime.Files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the embedded example: %w", err)
	}
	if !force {
		var exist []string
		for _, f := range files {
			dst := filepath.Join(dir, filepath.FromSlash(f))
			if _, err := os.Lstat(dst); err == nil {
				exist = append(exist, dst)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("check %s: %w", dst, err)
			}
		}
		if len(exist) > 0 {
			verb := "exists"
			if len(exist) > 1 {
				verb = "exist"
			}
			return nil, withCode(exitFailure, fmt.Errorf("%s already %s: nothing written; pass --force to overwrite", strings.Join(exist, ", "), verb))
		}
	}
	var written []string
	for _, f := range files {
		dst := filepath.Join(dir, filepath.FromSlash(f))
		b, err := realtime.Files.ReadFile(f)
		if err != nil {
			return written, fmt.Errorf("read the embedded example: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return written, fmt.Errorf("create %s: %w", filepath.Dir(dst), err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return written, fmt.Errorf("write %s: %w", dst, err)
		}
		written = append(written, dst)
	}
	return written, nil
}
