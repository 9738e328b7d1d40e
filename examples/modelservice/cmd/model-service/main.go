// Command model-service runs the instrumented example model server.
//
//	model-service --otlp 127.0.0.1:4317 --listen :8080
//	curl -d '{"amount":150,"country":"US"}' localhost:8080/predict
package main

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fleetwatch/fleetwatch/examples/modelservice"
)

func main() {
	otlp := flag.String("otlp", "127.0.0.1:4317", "collector OTLP gRPC endpoint")
	listen := flag.String("listen", ":8080", "HTTP listen address")
	model := flag.String("model", "fraud-detector", "model name")
	version := flag.String("version", "v1", "model version")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	host, _ := os.Hostname()
	svc, err := modelservice.New(ctx, modelservice.Config{Endpoint: *otlp, Model: *model, Version: *version, Node: host})
	if err != nil {
		slog.Error("start", "err", err)
		os.Exit(1)
	}
	srv := &http.Server{Addr: *listen, Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = svc.Shutdown(sctx)
	}()
	slog.Info("model-service listening", "addr", *listen, "otlp", *otlp)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		slog.Error("serve", "err", err)
		os.Exit(1)
	}
}
