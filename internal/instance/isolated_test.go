package instance

import (
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/testutil"
)

func TestIsolatedSmoke(t *testing.T) {
	testutil.RequireRoot(t, "namespaces")
	s := spec(t, testNS(t), "id; hostname; cat /etc/hosts; ls /home /run /tmp /root; ps -e; touch /etc/x; touch /tmp/x && echo tmpok; pwd; echo $HOME; cat boot.txt")
	s.UserData = "id -u; echo booted > boot.txt; touch /usr/x || echo usr-ro"
	s.Hostname = "ip-10-0-128-4.ec2.internal"
	s.IP = "10.0.128.4"
	in := start(t, s)
	waitExit(t, in)
	log := readLog(t, s)
	t.Log(log)
	if !strings.Contains(log, "ip-10-0-128-4\n") {
		t.Fatal("hostname")
	}
}
