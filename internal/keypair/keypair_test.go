package keypair

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// need returns the path of a tool the test requires; in CI its absence is
// a failure, elsewhere a skip.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (apt-get install openssh-client openssl)", tool)
		}
		t.Skipf("%s not installed (apt-get install openssh-client openssl)", tool)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// keygenFingerprint returns the second field of `ssh-keygen -l` output.
func keygenFingerprint(t *testing.T, file string, extra ...string) string {
	t.Helper()
	out := run(t, "ssh-keygen", append(append([]string{"-l"}, extra...), "-f", file)...)
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("unexpected ssh-keygen output %q", out)
	}
	return f[1]
}

func newStore(t *testing.T) *Store {
	t.Helper()
	t.Setenv("MOAT_HOME", t.TempDir())
	s, err := Open(DefaultDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCreatedED25519MatchesSSHKeygen(t *testing.T) {
	need(t, "ssh-keygen")
	s := newStore(t)
	kp, err := s.Create("web", ED25519, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultPrivateKeyPath("web"); kp.PrivateKeyPath != want {
		t.Errorf("private key at %s, want %s", kp.PrivateKeyPath, want)
	}
	fi, err := os.Stat(kp.PrivateKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", fi.Mode().Perm())
	}
	pubFile := filepath.Join(t.TempDir(), "web.pub")
	if err := os.WriteFile(pubFile, []byte(kp.PublicKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := kp.Fingerprint, keygenFingerprint(t, pubFile); got != want {
		t.Errorf("fingerprint %s, ssh-keygen says %s", got, want)
	}
	// The private key is one OpenSSH can use: it derives the same public key.
	derived := run(t, "ssh-keygen", "-y", "-f", kp.PrivateKeyPath)
	if strings.Fields(derived)[1] != strings.Fields(kp.PublicKey)[1] {
		t.Errorf("ssh-keygen -y derived %q, want %q", derived, kp.PublicKey)
	}
}

func TestCreatedRSAIsSHA1OfPKCS8(t *testing.T) {
	need(t, "openssl")
	need(t, "ssh-keygen")
	s := newStore(t)
	out := filepath.Join(t.TempDir(), "sub", "rsa.pem")
	kp, err := s.Create("legacy", RSA, out)
	if err != nil {
		t.Fatal(err)
	}
	if kp.Type != RSA || kp.Imported {
		t.Fatalf("got %+v", kp)
	}
	der := filepath.Join(t.TempDir(), "k.der")
	run(t, "openssl", "pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in", out, "-out", der)
	sum := run(t, "openssl", "sha1", "-c", der)
	want := strings.TrimSpace(sum[strings.LastIndex(sum, " ")+1:])
	if kp.Fingerprint != want {
		t.Errorf("fingerprint %s, openssl says %s", kp.Fingerprint, want)
	}
	derived := run(t, "ssh-keygen", "-y", "-f", out)
	if strings.Fields(derived)[1] != strings.Fields(kp.PublicKey)[1] {
		t.Errorf("ssh-keygen -y derived a different public key")
	}
}

func TestImportedFingerprintsMatchSSHKeygen(t *testing.T) {
	need(t, "ssh-keygen")
	for _, tc := range []struct {
		keygenType string
		typ        Type
		extra      []string // ssh-keygen -l options
		prefix     string   // what ssh-keygen puts before the fingerprint
	}{
		{"ed25519", ED25519, nil, ""},
		{"rsa", RSA, []string{"-E", "md5"}, "MD5:"},
	} {
		t.Run(tc.keygenType, func(t *testing.T) {
			s := newStore(t)
			key := filepath.Join(t.TempDir(), "id")
			args := []string{"-q", "-t", tc.keygenType, "-N", "", "-C", "me@example", "-f", key}
			if tc.typ == RSA {
				args = append(args, "-b", "3072")
			}
			run(t, "ssh-keygen", args...)
			data, err := os.ReadFile(key + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			kp, err := s.Import("mine", data)
			if err != nil {
				t.Fatal(err)
			}
			if kp.Type != tc.typ || !kp.Imported || kp.PrivateKeyPath != "" {
				t.Errorf("got %+v", kp)
			}
			want := strings.TrimPrefix(keygenFingerprint(t, key+".pub", tc.extra...), tc.prefix)
			if kp.Fingerprint != want {
				t.Errorf("fingerprint %s, ssh-keygen says %s", kp.Fingerprint, want)
			}
			if !strings.HasSuffix(kp.PublicKey, " me@example") {
				t.Errorf("comment lost: %q", kp.PublicKey)
			}
		})
	}
}

func TestStoreLifecycle(t *testing.T) {
	s := newStore(t)
	a, err := s.Create("b-key", ED25519, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.ID, "key-") || len(a.ID) != 21 {
		t.Errorf("id %q does not look like key-0123456789abcdef0", a.ID)
	}
	if _, err := s.Create("b-key", ED25519, filepath.Join(t.TempDir(), "other.pem")); !errors.Is(err, ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	// The private key is written once: an existing file is never overwritten.
	before, _ := os.ReadFile(a.PrivateKeyPath)
	if _, err := s.Create("c-key", ED25519, a.PrivateKeyPath); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("create over existing private key: %v", err)
	}
	after, _ := os.ReadFile(a.PrivateKeyPath)
	if string(before) != string(after) {
		t.Error("private key file was rewritten")
	}
	if _, err := s.Get("c-key"); !errors.Is(err, ErrNotFound) {
		t.Errorf("failed create left a key pair behind: %v", err)
	}
	if _, err := s.Import("a-key", []byte(a.PublicKey)); err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "a-key" || list[1].Name != "b-key" {
		t.Fatalf("list = %+v", list)
	}
	keys, err := s.PublicKeys("a-key", "b-key")
	if err != nil || len(keys) != 2 || string(keys[0].Marshal()) != string(keys[1].Marshal()) {
		t.Errorf("PublicKeys = %v, %v", keys, err)
	}
	if err := s.Delete("b-key"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("b-key"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(a.PrivateKeyPath); err != nil {
		t.Errorf("delete removed the user's private key: %v", err)
	}
}

func TestRejects(t *testing.T) {
	s := newStore(t)
	for _, tc := range []struct {
		name, pub, want string
	}{
		{"../x", "", "invalid key pair name"},
		{"", "", "invalid key pair name"},
		{"ok", "not a key", "parse public key"},
		{"ok", "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=", "unsupported key type"},
	} {
		_, err := s.Import(tc.name, []byte(tc.pub))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Import(%q, %q) = %v, want %q", tc.name, tc.pub, err, tc.want)
		}
	}
	if _, err := ParseType("dsa"); err == nil {
		t.Error("ParseType(dsa) succeeded")
	}
}

func TestHostKeyIsPersistent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "host_ed25519")
	a, err := LoadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if SHA256(a.PublicKey()) != SHA256(b.PublicKey()) {
		t.Error("host key changed between loads")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("host key file: %v %v", fi, err)
	}
}

func TestEnsure(t *testing.T) {
	s := newStore(t)
	kp, created, err := s.Ensure("gen", RSA, "")
	if err != nil || !created || kp.Type != RSA {
		t.Fatalf("Ensure generate: %+v %v %v", kp, created, err)
	}
	again, created, err := s.Ensure("gen", ED25519, "")
	if err != nil || created || again.ID != kp.ID {
		t.Fatalf("Ensure existing: %+v %v %v", again, created, err)
	}
	pub := filepath.Join(t.TempDir(), "k.pub")
	if err := os.WriteFile(pub, []byte(again.PublicKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	imp, created, err := s.Ensure("imp", "", pub)
	if err != nil || !created || !imp.Imported {
		t.Fatalf("Ensure import: %+v %v %v", imp, created, err)
	}
	if _, _, err := s.Ensure("missing", "", filepath.Join(t.TempDir(), "nope.pub")); err == nil {
		t.Error("Ensure with a missing public key file succeeded")
	}
}

// TestCreateTakenNameIsErrExists: creating a name that exists reports the
// name, not the private key file the first create left.
func TestCreateTakenNameIsErrExists(t *testing.T) {
	s := newStore(t)
	if _, err := s.Create("k1", ED25519, ""); err != nil {
		t.Fatal(err)
	}
	_, err := s.Create("k1", ED25519, "")
	if !errors.Is(err, ErrExists) {
		t.Fatalf("create k1 twice: %v, want ErrExists", err)
	}
}
