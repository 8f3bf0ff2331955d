package awscfn

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/moat-dev/moat/internal/plan"
)

// TestKeyPairNameChangesWithMaterial (issue 12, defect 2): every property
// of AWS::EC2::KeyPair is create-only, so a changed key is a replacement,
// and CloudFormation cannot replace a resource with a custom name that
// stays the same. The name must change exactly when the key does.
func TestKeyPairNameChangesWithMaterial(t *testing.T) {
	dir := t.TempDir()
	keyA, keyB := filepath.Join(dir, "a.pub"), filepath.Join(dir, "b.pub")
	os.WriteFile(keyA, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA0000000000000000000000000000000000000000000 a\n"), 0o644)
	os.WriteFile(keyB, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB1111111111111111111111111111111111111111111 b\n"), 0o644)
	name := func(k plan.KeyPair) any {
		t.Helper()
		p := loadPlan(t, stacks[0].file)
		p.KeyPairs = []plan.KeyPair{k}
		tpl, err := Render(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return props(t, tpl, keyPairID("ops"))["KeyName"]
	}
	generated := name(plan.KeyPair{Name: "ops", Type: "ed25519"})
	for _, c := range []struct {
		what string
		a, b plan.KeyPair
		same bool
	}{
		{"unchanged generated key", plan.KeyPair{Name: "ops", Type: "ed25519"}, plan.KeyPair{Name: "ops", Type: "ed25519"}, true},
		{"unchanged imported key", plan.KeyPair{Name: "ops", PublicKeyFile: keyA}, plan.KeyPair{Name: "ops", PublicKeyFile: keyA}, true},
		{"generated key type changed", plan.KeyPair{Name: "ops", Type: "ed25519"}, plan.KeyPair{Name: "ops", Type: "rsa"}, false},
		{"imported key rotated", plan.KeyPair{Name: "ops", PublicKeyFile: keyA}, plan.KeyPair{Name: "ops", PublicKeyFile: keyB}, false},
		{"generated to imported", plan.KeyPair{Name: "ops", Type: "ed25519"}, plan.KeyPair{Name: "ops", PublicKeyFile: keyA}, false},
	} {
		a, b := name(c.a), name(c.b)
		if reflect.DeepEqual(a, b) != c.same {
			t.Errorf("%s: key names %v and %v; want them %s", c.what, a, b, map[bool]string{true: "equal", false: "different"}[c.same])
		}
	}
	// The name still says which stack and key it is.
	if s, _ := generated.(map[string]any)["Fn::Sub"].(string); len(s) < len("${AWS::StackName}-ops-") || s[:len("${AWS::StackName}-ops-")] != "${AWS::StackName}-ops-" {
		t.Errorf("generated key name %v does not start with ${AWS::StackName}-ops-", generated)
	}
}
