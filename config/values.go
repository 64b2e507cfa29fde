package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
)

// The types in this file are configuration values with a syntax of their
// own. Each is decoded once, by Load (through UnmarshalText) or by the
// discovery tag parser, and handed on as a value: no consumer parses
// configuration text again. Each String gives back a form UnmarshalText
// accepts.

// StatusSet is a set of HTTP status codes from 100 to 599, written as codes
// and inclusive ranges: "200-399", "200,204" or "200-299,404". The zero
// value contains nothing. StatusSet is comparable with ==; equal sets
// compare equal however they were written.
type StatusSet struct {
	bits [8]uint64 // bit c-100 set: status c is in the set
}

// Statuses returns the set of the codes from lo to hi inclusive. It panics
// on codes outside 100-599 or lo > hi; it is meant for constants.
func Statuses(lo, hi int) StatusSet {
	var s StatusSet
	if err := s.add(lo, hi); err != nil {
		panic(err)
	}
	return s
}

func (s *StatusSet) add(lo, hi int) error {
	if lo < 100 || hi > 599 || lo > hi {
		return errors.New("status codes must be 100-599, low before high")
	}
	for c := lo; c <= hi; c++ {
		s.bits[(c-100)/64] |= 1 << ((c - 100) % 64)
	}
	return nil
}

// Contains reports whether code is in the set.
func (s StatusSet) Contains(code int) bool {
	if code < 100 || code > 599 {
		return false
	}
	return s.bits[(code-100)/64]&(1<<((code-100)%64)) != 0
}

// IsEmpty reports whether the set contains no code.
func (s StatusSet) IsEmpty() bool { return s == StatusSet{} }

// ParseStatusSet parses "200-399", "200,204" or "200-299,404".
func ParseStatusSet(text string) (StatusSet, error) {
	var s StatusSet
	for _, part := range strings.Split(text, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil {
			return StatusSet{}, errors.New(`want status codes or ranges such as "200-399" or "200,204"`)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
				return StatusSet{}, errors.New(`want status codes or ranges such as "200-399" or "200,204"`)
			}
		}
		if err := s.add(a, b); err != nil {
			return StatusSet{}, err
		}
	}
	return s, nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseStatusSet.
func (s *StatusSet) UnmarshalText(text []byte) error {
	v, err := ParseStatusSet(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// String writes the set as sorted codes and ranges, "200-299,404".
func (s StatusSet) String() string {
	var parts []string
	for c := 100; c <= 599; c++ {
		if !s.Contains(c) {
			continue
		}
		hi := c
		for hi+1 <= 599 && s.Contains(hi+1) {
			hi++
		}
		if hi == c {
			parts = append(parts, strconv.Itoa(c))
		} else {
			parts = append(parts, strconv.Itoa(c)+"-"+strconv.Itoa(hi))
		}
		c = hi
	}
	return strings.Join(parts, ",")
}

// Jitter is the fraction of an interval by which a schedule may move either
// way, from 0 (none) to under 1. It is written as a percentage ("10%") or a
// fraction ("0.1"); the empty string is 0.
type Jitter float64

// ParseJitter parses "10%" or "0.1".
func ParseJitter(text string) (Jitter, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return 0, nil
	}
	scale := 1.0
	if strings.HasSuffix(s, "%") {
		s, scale = strings.TrimSuffix(s, "%"), 100
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, errors.New(`want a percentage such as "10%"`)
	}
	j := Jitter(f / scale)
	if err := j.check(); err != nil {
		return 0, err
	}
	return j, nil
}

func (j Jitter) check() error {
	if j < 0 || j >= 1 || j != j {
		return errors.New("must be from 0% to under 100%")
	}
	return nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseJitter.
func (j *Jitter) UnmarshalText(text []byte) error {
	v, err := ParseJitter(string(text))
	if err != nil {
		return err
	}
	*j = v
	return nil
}

// String writes the jitter as a percentage, "10%".
func (j Jitter) String() string {
	return strconv.FormatFloat(float64(j)*100, 'f', -1, 64) + "%"
}

// CIDRs is a list of address prefixes, written as CIDRs or bare IPs (a bare
// IP is the prefix of that one address), comma-separated in one string or
// as a list. Every prefix is masked; IPv4-mapped IPv6 addresses are unmapped.
type CIDRs []netip.Prefix

// ParseCIDRs parses CIDRs or bare IPs; empty entries are skipped.
func ParseCIDRs(list []string) (CIDRs, error) {
	var out CIDRs
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR or IP", s)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR or IP", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler for a comma-separated
// list, as an environment variable gives it.
func (c *CIDRs) UnmarshalText(text []byte) error {
	v, err := ParseCIDRs(strings.Split(string(text), ","))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Contains reports whether addr lies in one of the prefixes.
func (c CIDRs) Contains(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range c {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// String writes the prefixes comma-separated.
func (c CIDRs) String() string {
	parts := make([]string, len(c))
	for i, p := range c {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// LogLevel is one of debug, info, warn and error. It implements
// slog.Leveler, so it can be given to a handler as it is.
type LogLevel slog.Level

// Log levels.
const (
	LevelDebug = LogLevel(slog.LevelDebug)
	LevelInfo  = LogLevel(slog.LevelInfo)
	LevelWarn  = LogLevel(slog.LevelWarn)
	LevelError = LogLevel(slog.LevelError)
)

// Level implements slog.Leveler.
func (l LogLevel) Level() slog.Level { return slog.Level(l) }

// UnmarshalText accepts exactly debug, info, warn and error.
func (l *LogLevel) UnmarshalText(text []byte) error {
	switch string(text) {
	case "debug":
		*l = LevelDebug
	case "info":
		*l = LevelInfo
	case "warn":
		*l = LevelWarn
	case "error":
		*l = LevelError
	default:
		return errors.New("want debug, info, warn or error")
	}
	return nil
}

// String gives the name UnmarshalText accepts.
func (l LogLevel) String() string {
	return strings.ToLower(slog.Level(l).String())
}
