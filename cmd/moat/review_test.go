package main

import (
	"os"
	"strings"
	"testing"
)

// Tests of the fixes from a black-box review of the CLI.

func TestKeypairCLIMessages(t *testing.T) {
	t.Setenv("MOAT_HOME", t.TempDir())
	if _, stderr, code := run(t, "keypair", "create", "k1"); code != exitOK {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	// A taken name is the error, not the key file it left.
	_, stderr, code := run(t, "keypair", "create", "k1")
	if code != exitUsage || !strings.Contains(stderr, "key pair already exists") {
		t.Errorf("create twice: exit %d, %q", code, stderr)
	}
	// -o text as every other listing; table stays an alias.
	for _, o := range []string{"text", "table", ""} {
		out, stderr, code := run(t, "keypair", "list", "-o", o)
		if code != exitOK || !strings.Contains(out, "k1") {
			t.Errorf("list -o %q: exit %d, %q %q", o, code, out, stderr)
		}
	}
	if _, stderr, code := run(t, "keypair", "list", "-o", "yaml"); code != exitUsage || !strings.Contains(stderr, "text or json") {
		t.Errorf("list -o yaml: exit %d, %q", code, stderr)
	}
	// An unknown key pair is not found before -y is asked for.
	if _, stderr, code := run(t, "keypair", "delete", "nope"); code != exitNotFound || !strings.Contains(stderr, "no such key pair") {
		t.Errorf("delete nope: exit %d, %q", code, stderr)
	}
	if _, stderr, code := run(t, "keypair", "delete", "k1"); code != exitUsage || !strings.Contains(stderr, "-y") {
		t.Errorf("delete k1 without -y: exit %d, %q", code, stderr)
	}
}

func TestKeypairImportOfAPrivateKeySaysSo(t *testing.T) {
	t.Setenv("MOAT_HOME", t.TempDir())
	if _, stderr, code := run(t, "keypair", "create", "k1"); code != exitOK {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	priv := os.Getenv("MOAT_HOME") + "/keys/k1.pem"
	_, stderr, code := run(t, "keypair", "import", "k2", priv)
	if code != exitUsage || !strings.Contains(stderr, "is a private key") {
		t.Errorf("import of a private key: exit %d, %q", code, stderr)
	}
}

func TestValidateCountsInWords(t *testing.T) {
	stdout, _, code := run(t, "validate", "-f", exampleFile)
	if code != exitOK || !strings.Contains(stdout, "is valid (no warnings)") {
		t.Errorf("validate example: exit %d, %q", code, stdout)
	}
	for n, want := range map[int]string{0: "no errors", 1: "1 error", 11: "11 errors"} {
		if got := count(n, "error"); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}
