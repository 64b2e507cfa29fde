// Package procnet reads what the kernel knows about this network
// namespace's sockets from /proc/net, for tests and measurements that must
// count connections as the OS sees them, whatever a process believes it
// holds. Linux only: elsewhere every call fails with the error of opening
// the /proc file.
package procnet

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Established counts the established TCP connections to addr (an IPv4
// host:port) in /proc/net/tcp. The error says why it could not count: an
// address that is not IPv4 host:port, or a /proc file that cannot be read
// (a *fs.PathError).
func Established(addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("counting connections to %q: %w", addr, err)
	}
	ip := net.ParseIP(host).To4()
	p, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		return 0, fmt.Errorf("counting connections to %q: want an IPv4 host:port", addr)
	}
	// /proc/net/tcp writes the IPv4 address as a little-endian word.
	want := strings.ToUpper(hex.EncodeToString([]byte{ip[3], ip[2], ip[1], ip[0]})) + fmt.Sprintf(":%04X", p)
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && fields[2] == want && fields[3] == "01" { // 01: ESTABLISHED
			n++
		}
	}
	return n, sc.Err()
}
