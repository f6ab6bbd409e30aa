package netlab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/layer2"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Environment variables that turn a re-executed binary into a helper.
const (
	envRole = "IRONLB_NETLAB_ROLE"
	envArgs = "IRONLB_NETLAB_ARGS"
)

// helperArgs is passed to a helper as JSON in envArgs.
type helperArgs struct {
	Name       string          `json:"name,omitempty"`
	Interfaces []string        `json:"interfaces,omitempty"`
	Schedule   []time.Duration `json:"schedule,omitempty"`
	Rescan     time.Duration   `json:"rescan,omitempty"`
	Debug      bool            `json:"debug,omitempty"`
	Addr       string          `json:"addr,omitempty"`     // echo: listen; probe: target
	Interval   time.Duration   `json:"interval,omitempty"` // probe
	IPs        []netip.Addr    `json:"ips,omitempty"`      // leakcheck, speaker
	Nodes      []NodeAddr      `json:"nodes,omitempty"`    // speaker
	Secret     string          `json:"secret,omitempty"`   // speaker
	Grace      time.Duration   `json:"grace,omitempty"`    // speaker
	Rejoin     time.Duration   `json:"rejoin,omitempty"`   // speaker
	Standby    bool            `json:"standby,omitempty"`  // speaker: start without a configuration
	Resolve    bool            `json:"resolve,omitempty"`  // announce: ResolveConflicts
	Count      int             `json:"count,omitempty"`    // junkarp: malformed frames before the request
}

// MaybeRunHelper runs the helper role named in the environment and exits;
// without one it returns at once. Call it first thing in main or TestMain of
// any binary that starts helpers (they re-execute that binary).
func MaybeRunHelper() {
	role := os.Getenv(envRole)
	if role == "" {
		return
	}
	var args helperArgs
	if err := json.Unmarshal([]byte(os.Getenv(envArgs)), &args); err != nil {
		fmt.Fprintf(os.Stderr, "netlab helper: parsing %s: %v\n", envArgs, err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	var err error
	switch role {
	case "announce":
		err = runAnnounce(ctx, args, os.Stdin, os.Stdout)
	case "echo":
		err = runEcho(ctx, args)
	case "probe":
		err = runProbe(ctx, args, os.Stdout)
	case "speaker":
		err = runSpeaker(ctx, args, os.Stdin, os.Stdout)
	case "leakcheck":
		err = runLeakCheck(args, os.Stdout)
	case "junkarp":
		err = runJunkARP(args, os.Stdout)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "netlab helper %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func helperLogger(args helperArgs) *slog.Logger {
	lvl := slog.LevelInfo
	if args.Debug {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("node", args.Name)
}

// runAnnounce drives a layer2.Announcer from line commands on in:
// "own [ip...]", "stop", "metric <name> <ip>"; it answers "ok", "metric <v>"
// or "err <msg>", prints "ready" once serving and "dup <ip> <mac> <iface>"
// for every OnDuplicate call. It ends when in is closed.
func runAnnounce(ctx context.Context, args helperArgs, in io.Reader, out io.Writer) error {
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", a...)
	}
	reg := prometheus.NewRegistry()
	metrics := layer2.NewMetrics(reg)
	ann, err := layer2.NewAnnouncer(layer2.Options{
		Interfaces:         args.Interfaces,
		Logger:             helperLogger(args),
		Metrics:            metrics,
		GratuitousSchedule: args.Schedule,
		RescanInterval:     args.Rescan,
		ResolveConflicts:   args.Resolve,
		OnDuplicate: func(ip netip.Addr, mac net.HardwareAddr, iface string) {
			say("dup %s %s %s", ip, mac, iface)
		},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ann.Run(ctx) }()

	deadline := time.Now().Add(10 * time.Second)
	for len(ann.Interfaces()) == 0 {
		if time.Now().After(deadline) {
			return errors.New("no interface served after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	say("ready %s", strings.Join(ann.Interfaces(), ","))

	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "own":
			var ips []netip.Addr
			for _, s := range f[1:] {
				ip, err := netip.ParseAddr(s)
				if err != nil {
					say("err %v", err)
					continue
				}
				ips = append(ips, ip)
			}
			ann.SetOwned(ips)
			say("ok")
		case "stop":
			ann.Stop()
			say("ok")
		case "metric":
			if len(f) != 3 {
				say("err usage: metric <name> <ip>")
				continue
			}
			say("metric %v", metricValue(reg, f[1], f[2]))
		default:
			say("err unknown command %q", f[0])
		}
	}
	cancel()
	return <-done
}

// metricValue returns the value of counter name{ip} in reg (0 if absent).
func metricValue(reg *prometheus.Registry, name, ip string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "ip" && l.GetValue() == ip {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// runEcho answers every UDP datagram on args.Addr with "<name> <payload>".
func runEcho(ctx context.Context, args helperArgs) error {
	pc, err := net.ListenPacket("udp", args.Addr)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); pc.Close() }()
	fmt.Println("ready")
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if _, err := pc.WriteTo(append([]byte(args.Name+" "), buf[:n]...), from); err != nil {
			continue // e.g. the way back is not resolved yet
		}
	}
}

// runProbe sends a numbered datagram to args.Addr every args.Interval and
// prints "r <unix-nanos> <responder> <seq>" for every answer.
func runProbe(ctx context.Context, args helperArgs, out io.Writer) error {
	dst, err := net.ResolveUDPAddr("udp", args.Addr)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); pc.Close() }()
	var mu sync.Mutex
	w := bufio.NewWriter(out)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue
			}
			now := time.Now().UnixNano()
			f := strings.Fields(string(buf[:n]))
			if len(f) != 2 {
				continue
			}
			mu.Lock()
			fmt.Fprintf(w, "r %d %s %s\n", now, f[0], f[1])
			w.Flush()
			mu.Unlock()
		}
	}()
	mu.Lock()
	fmt.Fprintln(w, "ready")
	w.Flush()
	mu.Unlock()
	t := time.NewTicker(args.Interval)
	defer t.Stop()
	for seq := 0; ; seq++ {
		// Errors (unreachable while the neighbor entry is failed) are
		// part of what is measured: keep sending.
		_, _ = pc.WriteTo([]byte(strconv.Itoa(seq)), dst)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// runLeakCheck starts and ends Announcers a few times (alternating context
// cancellation and Stop) and prints "leak <goroutines before> <after> <fds
// before> <after>".
func runLeakCheck(args helperArgs, out io.Writer) error {
	g0, fd0 := runtime.NumGoroutine(), countFDs()
	for i := range 4 {
		ann, err := layer2.NewAnnouncer(layer2.Options{
			Interfaces:     args.Interfaces,
			Logger:         helperLogger(args),
			RescanInterval: 20 * time.Millisecond,
		})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ann.Run(ctx) }()
		ann.SetOwned(args.IPs)
		deadline := time.Now().Add(5 * time.Second)
		for len(ann.Interfaces()) == 0 {
			if time.Now().After(deadline) {
				cancel()
				return errors.New("leakcheck: no interface served after 5s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(150 * time.Millisecond) // several rescans and gratuitous sends
		if i%2 == 0 {
			cancel()
		} else {
			ann.Stop()
		}
		select {
		case err := <-done:
			if err != nil {
				cancel()
				return fmt.Errorf("leakcheck: Run returned %w", err)
			}
		case <-time.After(5 * time.Second):
			cancel()
			return errors.New("leakcheck: Run did not return within 5s")
		}
		cancel()
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > g0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintf(out, "leak %d %d %d %d\n", g0, runtime.NumGoroutine(), fd0, countFDs())
	return nil
}

// runJunkARP sends args.Count malformed ARP frames on args.Interfaces[0]
// and keeps sending about one a millisecond; meanwhile it sends ten real
// requests for args.IPs[0], 200ms apart, and prints for each "reply
// <nanoseconds to the reply> <mac>" or "noreply" (none within 1s).
func runJunkARP(args helperArgs, out io.Writer) error {
	if len(args.Interfaces) != 1 || len(args.IPs) != 1 {
		return errors.New("junkarp: want one interface and one IP")
	}
	ifi, err := net.InterfaceByName(args.Interfaces[0])
	if err != nil {
		return err
	}
	raw, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
	if err != nil {
		return fmt.Errorf("junkarp: packet socket: %w", err)
	}
	defer raw.Close()
	client, err := arp.Dial(ifi)
	if err != nil {
		return fmt.Errorf("junkarp: ARP socket: %w", err)
	}
	defer client.Close()
	// An ARP frame announcing a 255-byte hardware address in a payload far
	// too short for it: it fails to parse even when padded to 60 bytes.
	junk := append(append(append([]byte{}, ethernet.Broadcast...), ifi.HardwareAddr...),
		0x08, 0x06, // EtherType ARP
		0x00, 0x01, 0x08, 0x00, 0xff, 0x04, 0x00, 0x01, 0xde, 0xad)
	bcast := &packet.Addr{HardwareAddr: ethernet.Broadcast}
	for range args.Count {
		if _, err := raw.WriteTo(junk, bcast); err != nil {
			return fmt.Errorf("junkarp: writing junk: %w", err)
		}
	}
	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			_, _ = raw.WriteTo(junk, bcast)
		}
	}()
	defer func() { close(stop); <-flooded }()

	target := args.IPs[0]
	for range 10 {
		start := time.Now()
		if err := client.Request(target); err != nil {
			return fmt.Errorf("junkarp: request: %w", err)
		}
		if err := client.SetReadDeadline(start.Add(time.Second)); err != nil {
			return err
		}
		for {
			p, _, err := client.Read()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					fmt.Fprintln(out, "noreply")
					break
				}
				continue
			}
			if p.Operation == arp.OperationReply && p.SenderIP == target {
				fmt.Fprintf(out, "reply %d %s\n", time.Since(start).Nanoseconds(), p.SenderHardwareAddr)
				break
			}
		}
		time.Sleep(time.Until(start.Add(200 * time.Millisecond)))
	}
	return nil
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// helperCmd prepares the current executable as helper role inside ns.
func helperCmd(ctx context.Context, ns, role string, args helperArgs) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("netlab: finding own executable: %w", err)
	}
	js, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, exe)
	cmd.Env = append(os.Environ(), envRole+"="+role, envArgs+"="+string(js))
	cmd.WaitDelay = 2 * time.Second
	return cmd, nil
}
