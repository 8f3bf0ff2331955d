package testutil

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(5*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Errorf("Poll = %v after %d calls, want nil after 3", err, n)
	}
	start := time.Now()
	err := Poll(50*time.Millisecond, func() error { return errors.New("still missing") })
	if err == nil || err.Error() != "still missing" {
		t.Errorf("Poll on a condition that never holds = %v, want its last error", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("Poll with a 50 ms timeout returned after %v", d)
	}
}

func TestIsolateAWS(t *testing.T) {
	t.Setenv("AWS_PROFILE", "production")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAREAL")
	t.Run("isolated", func(t *testing.T) {
		FakeAWS(t, "http://127.0.0.1:4566")
		for k, want := range map[string]string{
			"AWS_PROFILE": "", "AWS_ACCESS_KEY_ID": FakeAWSAccessKey, "AWS_REGION": "us-east-1",
			"AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
		} {
			if got := os.Getenv(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if b, err := os.ReadFile(os.Getenv("AWS_CONFIG_FILE")); err != nil || len(b) != 0 {
			t.Errorf("AWS_CONFIG_FILE: %q, %v; want an empty file", b, err)
		}
		if _, set := os.LookupEnv("AWS_PROFILE"); set {
			t.Error("AWS_PROFILE set (even empty, the SDK would look for a profile named \"\")")
		}
	})
	if got := os.Getenv("AWS_PROFILE"); got != "production" {
		t.Errorf("AWS_PROFILE after the test = %q, want it restored", got)
	}
}
