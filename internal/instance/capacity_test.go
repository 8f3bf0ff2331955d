package instance

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/nsenter"
	"github.com/moat-dev/moat/internal/testutil"
)

// getInNS sends GET path to 127.0.0.1:port inside the namespace at nsPath.
func getInNS(nsPath string, port int, path string) (int, error) {
	// The socket keeps the namespace it is created in.
	c, err := nsenter.Open(nsPath, func() (net.Conn, error) {
		return net.DialTimeout("tcp4", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
	})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// benchInstances is how many instances BenchmarkExampleAppCapacity starts
// (-instances 100 for the 100-instance figure in docs/benchmarks.md).
var benchInstances = flag.Int("instances", 8, "instances BenchmarkExampleAppCapacity starts")

// BenchmarkExampleAppCapacity starts -instances (default 8) instances of the example app
// (examples/realtime, python3), each in its own namespace, waits until
// every one answers /health, and reports the launch-to-healthy time, the
// resident memory and idle CPU per instance, and how many instances this
// machine's available memory holds at that footprint (80% of
// MemAvailable). Each iteration takes about 3 s and cleans up after
// itself; run with -benchtime 1x.
func BenchmarkExampleAppCapacity(b *testing.B) {
	testutil.RequireRoot(b, "network namespaces, running as another user")
	app, err := filepath.Abs("../../examples/realtime/app")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(app, "app.py")); err != nil {
		b.Skipf("example app not found: %v", err)
	}
	n := *benchInstances
	for b.Loop() {
		d := baseDir(b)
		var ins []*Instance
		var nss []string
		start := time.Now()
		var dels []func()
		for i := range n {
			ns, del := newNS(b)
			dels = append(dels, del)
			s := Spec{ID: fmt.Sprintf("i-bench%010d", i), NetNSPath: ns, FilesDir: app,
				WorkDir: filepath.Join(d, strconv.Itoa(i)), LogPath: filepath.Join(d, strconv.Itoa(i)+".log"),
				Env: map[string]string{"PORT": "8000", "MOAT_IMDS": "http://127.0.0.1:9"}, Command: "exec python3 app.py"}
			in, err := Start(context.Background(), s)
			if err != nil {
				b.Fatal(err)
			}
			ins = append(ins, in)
			nss = append(nss, ns)
		}
		launched := time.Since(start)
		deadline := time.Now().Add(30*time.Second + time.Duration(n)*200*time.Millisecond)
		for i, ns := range nss {
			testutil.Eventually(b, time.Until(deadline), func() error {
				if code, err := getInNS(ns, 8000, "/health"); err != nil || code != 200 {
					return fmt.Errorf("instance %d not healthy: %v %d", i, err, code)
				}
				return nil
			})
		}
		healthy := time.Since(start)
		cpu0 := 0.0
		for _, in := range ins {
			c, _ := in.Usage()
			cpu0 += c
		}
		time.Sleep(2 * time.Second) // idle sample window
		var mem int64
		cpu1 := 0.0
		for _, in := range ins {
			c, m := in.Usage()
			cpu1 += c
			mem += m
		}
		perMem := float64(mem) / float64(n)
		b.ReportMetric(float64(launched.Microseconds())/1000/float64(n), "ms-launch/instance")
		b.ReportMetric(float64(healthy.Milliseconds())/float64(n), "ms-to-healthy/instance")
		b.ReportMetric(perMem/(1<<20), "MiB/instance")
		b.ReportMetric(100*(cpu1-cpu0)/2/float64(n), "idle-cpu%/instance")
		if perMem > 0 {
			b.ReportMetric(float64(memAvailable())*0.8/perMem, "instances-by-memory")
		}
		// Everything of this iteration goes before the next one starts.
		for _, in := range ins {
			if err := in.Stop(context.Background(), time.Second); err != nil {
				b.Error(err)
			}
		}
		for _, del := range dels {
			del()
		}
	}
}
