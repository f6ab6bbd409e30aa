package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderOptions configure RunElected.
type LeaderOptions struct {
	Client    kubernetes.Interface
	Namespace string // of the Lease
	LeaseName string
	Identity  string // unique per replica, e.g. the pod name
	Logger    *slog.Logger
	// Durations; zero values take client-go's usual 15s/10s/2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// ErrLostLeadership is returned by RunElected when this replica stops being the leader while
// ctx is still running; the process should exit and be restarted as a standby.
var ErrLostLeadership = errors.New("lost leadership")

// RunElected runs fn only while this replica holds the coordination.k8s.io Lease, so several
// replicas can run and exactly one assigns addresses. It returns when ctx ends (after releasing
// the Lease) or when leadership is lost.
func RunElected(ctx context.Context, opts LeaderOptions, fn func(ctx context.Context)) error {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LeaseDuration == 0 {
		opts.LeaseDuration = 15 * time.Second
	}
	if opts.RenewDeadline == 0 {
		opts.RenewDeadline = 10 * time.Second
	}
	if opts.RetryPeriod == 0 {
		opts.RetryPeriod = 2 * time.Second
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, opts.Namespace, opts.LeaseName,
		opts.Client.CoreV1(), opts.Client.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: opts.Identity})
	if err != nil {
		return fmt.Errorf("leader election lock: %w", err)
	}
	lost := make(chan struct{})
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   opts.LeaseDuration,
		RenewDeadline:   opts.RenewDeadline,
		RetryPeriod:     opts.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            opts.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				opts.Logger.Info("became leader", "identity", opts.Identity, "lease", opts.Namespace+"/"+opts.LeaseName)
				fn(ctx)
			},
			OnStoppedLeading: func() {
				opts.Logger.Info("stopped leading", "identity", opts.Identity)
				close(lost)
			},
			OnNewLeader: func(id string) {
				if id != opts.Identity {
					opts.Logger.Info("standing by", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	elector.Run(ctx)
	select {
	case <-lost:
		if ctx.Err() == nil {
			return ErrLostLeadership
		}
	default:
	}
	return nil
}
