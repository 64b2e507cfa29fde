// Package dockertest holds the tests that run the compose files of this
// repository under a real Docker Engine (docs/docker.md): docker-compose.yml
// as a user brings it up, and the highly available topology of
// deployments/docker-compose.ha.yml. They skip, with the reason, where no
// Docker daemon answers or a published port is taken; `make test-compose`
// runs them alone.
package dockertest
