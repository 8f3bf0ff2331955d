package sshpolicy

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func newKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeySet(t *testing.T) {
	a, b := newKey(t), newKey(t)
	s := NewKeySet(a)
	if !s.Contains(a) || s.Contains(b) || s.Len() != 1 || !s.ContainsFingerprint(ssh.FingerprintSHA256(a)) {
		t.Fatalf("NewKeySet(a): contains a %v, b %v, len %d", s.Contains(a), s.Contains(b), s.Len())
	}
	s.Set(b) // replaced, not added to
	if s.Contains(a) || !s.Contains(b) || s.Len() != 1 {
		t.Errorf("after Set(b): contains a %v, b %v, len %d", s.Contains(a), s.Contains(b), s.Len())
	}
}

func TestKnownHostsLine(t *testing.T) {
	k := newKey(t)
	for addr, prefix := range map[string]string{"10.0.1.10:22": "10.0.1.10 ssh-ed25519 ", "127.0.0.1:2222": "[127.0.0.1]:2222 ssh-ed25519 "} {
		if got := KnownHostsLine(addr, k); !strings.HasPrefix(got, prefix) {
			t.Errorf("KnownHostsLine(%s) = %q, want it to start with %q", addr, got, prefix)
		}
	}
}

func TestModernHasNoWeakAlgorithms(t *testing.T) {
	c := Modern()
	if len(c.KeyExchanges) == 0 || !strings.Contains(strings.Join(c.KeyExchanges, ","), ssh.KeyExchangeCurve25519) {
		t.Errorf("key exchanges %v lack curve25519", c.KeyExchanges)
	}
	for _, alg := range append(append(append([]string{}, c.KeyExchanges...), c.Ciphers...), c.MACs...) {
		if strings.Contains(alg, "sha1") || strings.Contains(alg, "cbc") || strings.Contains(alg, "nistp") {
			t.Errorf("weak algorithm %s offered", alg)
		}
	}
}
