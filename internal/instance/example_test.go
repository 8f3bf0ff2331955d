package instance_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/moat-dev/moat/internal/instance"
)

// How the daemon launches, watches and stops one instance of a launch
// template. The network namespace (with lo up and the instance's address)
// is created by the caller first.
func Example() {
	ctx := context.Background()
	in, err := instance.Start(ctx, instance.Spec{
		ID:        "i-0123456789abcdef0",
		NetNSPath: "/run/netns/moat-web-i-0123456789abcdef0",
		WorkDir:   "/var/lib/moat/demo/instances/i-0123456789abcdef0", // parents searchable by the account
		FilesDir:  "/srv/app",
		Env:       map[string]string{"PORT": "8000"},
		UserData:  "#!/bin/sh\necho booted > boot.txt\n",
		Command:   "python3 app.py",
		User:      "", // nobody unless the launch template names a local account
		LogPath:   "/var/lib/moat/demo/logs/i-0123456789abcdef0.log",
	})
	if err != nil {
		// The launch failed (user data failed, namespace missing, ...):
		// record "Launching a new EC2 instance ... Status Reason: err".
		slog.Error("launch", "err", err)
		return
	}
	go func() {
		<-in.Exited() // EC2 health: the process is gone
		state, reason := in.State()
		slog.Info("instance exited", "id", in.ID(), "state", state, "reason", reason)
	}()
	cpu, mem := in.Usage() // sample periodically; CPU% = delta cpu / delta wall
	fmt.Println(in.PID() > 0, cpu >= 0, mem >= 0)
	// Terminate (after deregistration from the target groups):
	_ = in.Stop(ctx, 10*time.Second)
}
