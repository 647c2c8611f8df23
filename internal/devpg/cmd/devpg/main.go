// Command devpg manages the private PostgreSQL cluster that make run and the
// tests start when no server answers at the well-known URL, for make
// pg-stop and scripts that must clean up after themselves.
//
//	devpg where  DIR   print where the cluster for DIR (.data/pg) lives
//	devpg stop   DIR   stop it, if it runs
//	devpg remove DIR   stop it and delete it with its data
//	devpg url DIR DB   find or start a server as make run does (the
//	                   well-known one, else the cluster for DIR), create
//	                   database DB on it if missing, and print its URL
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/auditlog/auditlog/internal/devpg"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "devpg:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 3 && args[0] == "url" {
		// make cluster: every auditd instance must share one database.
		admin, err := devpg.Ensure(ctx, args[1])
		if err != nil {
			return err
		}
		url, err := devpg.EnsureDatabase(ctx, admin, args[2])
		if err != nil {
			return err
		}
		fmt.Println(url)
		return nil
	}
	if len(args) != 2 {
		return errors.New("usage: devpg where|stop|remove DIR | devpg url DIR DB")
	}
	dir := args[1]
	cluster, err := devpg.ClusterDir(ctx, dir)
	if err != nil {
		return err
	}
	switch args[0] {
	case "where":
		fmt.Println(cluster)
		return nil
	case "stop":
		err := devpg.Stop(ctx, dir)
		if errors.Is(err, devpg.ErrNotRunning) {
			fmt.Println(err)
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Println("stopped the private postgres cluster in", cluster)
		return nil
	case "remove":
		if err := devpg.Remove(ctx, dir); err != nil {
			return err
		}
		fmt.Println("removed the private postgres cluster in", cluster)
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}
