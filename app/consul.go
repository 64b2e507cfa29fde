package app

import (
	"errors"
	"log/slog"

	"github.com/switchyard-gw/switchyard/config"
	"github.com/switchyard-gw/switchyard/discovery"
)

func newConsulSource(cfg *config.Config, log *slog.Logger) (discovery.Source, error) {
	return nil, errors.New("discovery.provider consul: not implemented yet")
}
