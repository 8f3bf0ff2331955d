package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/moat-dev/moat/internal/keypair"
	"github.com/spf13/cobra"
)

func init() { register(newKeypairCommand) }

func newKeypairCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keypair",
		Short: "Create, import, list and delete SSH key pairs (like EC2 key pairs)",
		Long: `Key pairs live in $MOAT_HOME/keypairs (MOAT_HOME defaults to ~/.local/state/moat).
A created key pair's private key is written once, mode 0600, to --out or to
$MOAT_HOME/keys/NAME.pem, where moat ssh finds it. Fingerprints follow EC2:
ed25519 SHA256 (as ssh-keygen -l), imported RSA MD5, created RSA SHA-1 of PKCS#8.`,
	}
	cmd.AddCommand(newKeypairCreateCommand(), newKeypairImportCommand(), newKeypairListCommand(), newKeypairDeleteCommand())
	return cmd
}

func openKeyStore() (*keypair.Store, error) {
	s, err := keypair.Open(keypair.DefaultDir())
	return s, withCode(exitFailure, err)
}

func keypairErr(err error) error {
	switch {
	case errors.Is(err, keypair.ErrNotFound):
		return withCode(exitNotFound, err)
	case errors.Is(err, keypair.ErrExists):
		return withCode(exitUsage, err)
	}
	return err
}

func newKeypairCreateCommand() *cobra.Command {
	var typ, out string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Generate a key pair and write its private key once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := keypair.ParseType(typ)
			if err != nil {
				return withCode(exitUsage, err)
			}
			s, err := openKeyStore()
			if err != nil {
				return err
			}
			kp, err := s.Create(args[0], t, out)
			if err != nil {
				return keypairErr(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "private key written to %s (mode 0600); moat will not show it again\n", kp.PrivateKeyPath)
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", kp.Name, kp.ID, kp.Fingerprint)
			return nil
		},
	}
	cmd.Flags().StringVar(&typ, "type", "ed25519", "key type: ed25519 or rsa")
	cmd.Flags().StringVar(&out, "out", "", "where to write the private key (default $MOAT_HOME/keys/NAME.pem)")
	return cmd
}

func newKeypairImportCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "import NAME FILE.pub",
		Short: "Import an OpenSSH public key as a key pair",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[1])
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("import key pair %s: %w", args[0], err))
			}
			if strings.Contains(string(data), "PRIVATE KEY-----") {
				return withCode(exitUsage, fmt.Errorf("import key pair %s: %s is a private key; import its public half (%s.pub, or ssh-keygen -y -f %s > %s.pub)", args[0], args[1], args[1], args[1], args[1]))
			}
			s, err := openKeyStore()
			if err != nil {
				return err
			}
			kp, err := s.Import(args[0], data)
			if err != nil {
				if errors.Is(err, keypair.ErrExists) || errors.Is(err, keypair.ErrNotFound) {
					return keypairErr(err)
				}
				return withCode(exitUsage, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", kp.Name, kp.ID, kp.Fingerprint)
			return nil
		},
	}
}

func newKeypairListCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List key pairs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "json" && output != "text" && output != "table" {
				return withCode(exitUsage, fmt.Errorf("unknown output format %q: use text or json", output))
			}
			s, err := openKeyStore()
			if err != nil {
				return err
			}
			list, err := s.List()
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tTYPE\tSOURCE\tFINGERPRINT")
			for _, kp := range list {
				src := "created"
				if kp.Imported {
					src = "imported"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", kp.Name, kp.ID, kp.Type, src, kp.Fingerprint)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func newKeypairDeleteCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a key pair (its private key file is left alone)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openKeyStore()
			if err != nil {
				return err
			}
			if _, err := s.Get(args[0]); err != nil {
				return keypairErr(err)
			}
			if !yes {
				return withCode(exitUsage, fmt.Errorf("delete key pair %s: pass -y to confirm", args[0]))
			}
			if err := s.Delete(args[0]); err != nil {
				return keypairErr(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "deleted key pair %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "confirm the deletion (required; moat does not prompt)")
	return cmd
}
