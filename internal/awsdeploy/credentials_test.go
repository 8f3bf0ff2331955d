package awsdeploy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moat-dev/moat/internal/awsdeploy"
	"github.com/moat-dev/moat/internal/testutil"
)

// A profile that assumes a role with mfa_serial loads, asks for the code
// once, and sends it with AssumeRole. Before moat set a token provider,
// the SDK refused to load such a profile ("AssumeRoleTokenProvider session
// option not set"). STS is an httptest server on loopback: nothing leaves
// the machine.
func TestMFAProfileAsksForTheCode(t *testing.T) {
	testutil.IsolateAWS(t)
	var mu sync.Mutex
	var got []string
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		got = append(got, fmt.Sprintf("%s role=%s serial=%s code=%s", r.PostForm.Get("Action"), r.PostForm.Get("RoleArn"), r.PostForm.Get("SerialNumber"), r.PostForm.Get("TokenCode")))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>ASIAASSUMED</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/deploy/moat</Arn><AssumedRoleId>AROA:moat</AssumedRoleId></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>`)
	}))
	defer sts.Close()
	cfgFile := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfgFile, []byte(`[profile base]
aws_access_key_id = AKIABASE
aws_secret_access_key = base-secret
region = eu-west-1

[profile deploy]
role_arn = arn:aws:iam::123456789012:role/deploy
mfa_serial = arn:aws:iam::123456789012:mfa/operator
source_profile = base
region = eu-west-1
`), 0o600)
	t.Setenv("AWS_CONFIG_FILE", cfgFile)

	// Loading alone makes no call.
	asked := 0
	opts := awsdeploy.ClientOptions{Profile: "deploy", EndpointURL: sts.URL, MFAToken: func() (string, error) { asked++; return "123456", nil }}
	cfg, err := awsdeploy.LoadConfig(context.Background(), opts)
	if err != nil {
		t.Fatalf("load an mfa_serial profile: %v", err)
	}
	if cfg.Region != "eu-west-1" || asked != 0 || len(got) != 0 {
		t.Fatalf("after load: region %q, asked %d, calls %v", cfg.Region, asked, got)
	}
	// Connect retrieves the credentials: one prompt, one AssumeRole with the code.
	cl, err := awsdeploy.Connect(context.Background(), opts)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	want := "AssumeRole role=arn:aws:iam::123456789012:role/deploy serial=arn:aws:iam::123456789012:mfa/operator code=123456"
	if asked != 1 || len(got) != 1 || got[0] != want {
		t.Errorf("asked %d times, STS saw %q, want one %q", asked, got, want)
	}
	if cl.Region != "eu-west-1" {
		t.Errorf("region %s", cl.Region)
	}

	// A failing prompt (no terminal, Ctrl-C) is a credentials error that names the profile.
	opts.MFAToken = func() (string, error) { return "", fmt.Errorf("no MFA code: standard input closed") }
	_, err = awsdeploy.Connect(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "no MFA code") || !strings.Contains(err.Error(), "--profile deploy") {
		t.Errorf("failing prompt: %v", err)
	}
}
