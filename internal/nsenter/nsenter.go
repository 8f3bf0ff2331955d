// Package nsenter runs code inside a Linux network namespace, the way
// CNI's ns.WithNetNSPath does: on a locked OS thread that enters the
// namespace, runs the code and goes back, so no other goroutine ever runs
// in the wrong namespace. Sockets keep the namespace they were made in,
// so a listener or connection opened inside is used from any goroutine
// afterwards.
package nsenter

import (
	"fmt"
	"io"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a locked OS thread in the network namespace target (in
// the caller's own when target is netns.None()), then puts the thread
// back into the namespace it came from. fn must start no goroutine: a
// goroutine may run on another thread, in another namespace. A thread
// that cannot be put back stays locked and the runtime discards it when
// Do's goroutine ends; fn does the same with a thread it changed in some
// other way it cannot undo (a cgroup it could not leave) by calling
// runtime.LockOSThread once more.
//
// fn's error is returned; an error entering or leaving the namespace is
// returned instead, after fn (when it ran) has done its work: a caller
// that got an open socket from fn closes it then.
func Do(target netns.NsHandle, fn func() error) error { return do(target, "", fn) }

// do is Do; name, when not "", names the namespace in errors.
func do(target netns.NsHandle, name string, fn func() error) error {
	if name != "" {
		name = " " + name
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("open the current network namespace: %w", err)
			return // exits locked: the thread is discarded
		}
		defer orig.Close()
		if target.IsOpen() {
			if err := netns.Set(target); err != nil {
				runtime.UnlockOSThread() // still in orig
				errc <- fmt.Errorf("enter network namespace%s: %w", name, err)
				return
			}
		}
		ferr := fn()
		if err := back(orig); err != nil {
			errc <- fmt.Errorf("return from network namespace%s: %w", name, err)
			return // stays locked: the thread is discarded
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// back puts the calling thread into orig, unless it is there already (fn
// ran in the caller's own namespace and did not switch).
func back(orig netns.NsHandle) error {
	cur, err := netns.Get()
	if err != nil {
		return err
	}
	defer cur.Close()
	if cur.Equal(orig) {
		return nil
	}
	return netns.Set(orig)
}

// DoPath is Do in the namespace mounted at path (/run/netns/NAME,
// /proc/PID/ns/net), or in the caller's own when path is "".
func DoPath(path string, fn func() error) error {
	if path == "" {
		return Do(netns.None(), fn)
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer h.Close()
	return do(h, path, fn)
}

// Open runs open in the network namespace at path (see DoPath) and
// returns what it made there: a socket keeps the namespace it was made in,
// so a listener or connection is used from any goroutine afterwards. When
// the thread cannot go back, what open made is closed and the error
// returned.
func Open[T io.Closer](path string, open func() (T, error)) (T, error) {
	var made T
	err := DoPath(path, func() (err error) {
		made, err = open()
		return err
	})
	if err != nil {
		if any(made) != nil {
			made.Close()
		}
		var zero T
		return zero, err
	}
	return made, nil
}

// NewNamed creates a network namespace mounted at /run/netns/name,
// without moving the caller into it, and returns a handle to it.
func NewNamed(name string) (netns.NsHandle, error) {
	var h netns.NsHandle
	err := Do(netns.None(), func() (err error) {
		h, err = netns.NewNamed(name) // moves this thread into it; Do moves it back
		return err
	})
	if err != nil {
		if h.IsOpen() { // made, but this thread could not leave it
			h.Close()
			_ = netns.DeleteNamed(name)
		}
		return netns.None(), fmt.Errorf("create network namespace %s: %w", name, err)
	}
	return h, nil
}

// New creates an anonymous network namespace, without moving the caller
// into it; it lives while the handle is open.
func New() (netns.NsHandle, error) {
	var h netns.NsHandle
	err := Do(netns.None(), func() (err error) {
		h, err = netns.New()
		return err
	})
	if err != nil {
		if h.IsOpen() {
			h.Close()
		}
		return netns.None(), fmt.Errorf("create network namespace: %w", err)
	}
	return h, nil
}
