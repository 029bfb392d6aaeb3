package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/tildegate/tildegate/agent"
	"go.uber.org/zap"
)

// serve runs the agent on the configuration until ctx ends, reloading it
// when the file changes or on SIGHUP. It returns the exit status.
func serve(ctx context.Context, cfg config, log *zap.Logger) int {
	sv, log := supervise(ctx, log)
	defer sv.close()
	entries, err := load(cfg.file)
	if err != nil {
		log.Error("cannot start: " + err.Error())
		return 1
	}
	if cfg.spareGiven {
		log.Warn("-spare is ignored: sessions are multiplexed over the few back connections the gateway asks for")
	}
	dial, err := bindDial(cfg.bind)
	if err != nil {
		log.Error("cannot start: " + err.Error())
		return 2
	}
	a := agent.New(agent.Options{CAFile: cfg.caFile, Insecure: cfg.insecure, Logger: log, Dial: dial,
		Version: "tildegate-agent/" + version(), Lookup: lookup(cfg.dns), ResolveInterval: cfg.resolveInterval})
	a.Apply(entries)
	stopStatus, err := startStatus(cfg.statusAddr, a, log)
	if err != nil {
		log.Error("cannot start: " + err.Error())
		return 1
	}
	defer stopStatus()

	ctx, cancel := context.WithCancel(ctx)
	changed := make(chan struct{}, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		watch(ctx, cfg.file, pollInterval, log, changed)
	}()
	defer func() {
		cancel()
		<-watched
	}()
	hup := make(chan os.Signal, 1)
	notifyReload(hup)
	defer signal.Stop(hup)
	log.Info("tildegate-agent started", zap.String("version", version()),
		zap.String("config", cfg.file), zap.Int("entries", len(entries)))
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	sv.tell(phaseReady)

	reload := func(why string) {
		sv.tell(phaseReloading)
		defer sv.tell(phaseReady)
		entries, err := load(cfg.file)
		if err != nil {
			log.Error("cannot reload the configuration; the running entries go on: "+err.Error(), zap.String("cause", why))
			return
		}
		log.Info("configuration reloaded", zap.String("cause", why), zap.Int("entries", len(entries)))
		a.Apply(entries)
	}
	for {
		select {
		case <-hup:
			reload("SIGHUP")
		case <-changed:
			reload("the file changed")
		case <-sv.reloads():
			reload("the service manager asked")
		case <-sv.watchdog():
			sv.tell(phaseAlive)
		case err := <-ran:
			if err != nil {
				log.Error("cannot run: " + err.Error())
				return 1
			}
			log.Info("tildegate-agent stopped")
			return 0
		}
	}
}
