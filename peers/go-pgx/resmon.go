package main

// `GET /test/resmon` (core::resmon): the process reading itself from /proc.

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
)

// Linux's USER_HZ (sysconf(_SC_CLK_TCK)) on every architecture Go runs Linux on; Go has no
// sysconf.
const (
	ticksPerSecond = 100
)

type resourceSnapshot struct {
	Variant          string  `json:"variant"`
	Pid              int     `json:"pid"`
	Threads          int64   `json:"threads"`
	RssBytes         uint64  `json:"rss_bytes"`
	CPUUserSeconds   Seconds `json:"cpu_user_seconds"`
	CPUSystemSeconds Seconds `json:"cpu_system_seconds"`
	UptimeSeconds    Seconds `json:"uptime_seconds"`
	// One process: Go serves every connection from this one.
	Processes int `json:"processes"`
	// GOMAXPROCS as applied.
	Workers    int    `json:"workers"`
	DbPoolSize int    `json:"db_pool_size"`
	DbRecycle  string `json:"db_recycle"`
}

func snapshot(settings Settings) (resourceSnapshot, error) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return resourceSnapshot{}, err
	}
	// The command name (field 2) may hold spaces and parentheses: split after its last ')'.
	fields := bytes.Fields(stat[bytes.LastIndexByte(stat, ')')+2:])
	if len(fields) < 22 {
		return resourceSnapshot{}, fmt.Errorf("/proc/self/stat has %d fields after the name", len(fields))
	}
	// fields[0] is field 3 of proc(5) (state); field N is fields[N-3].
	number := func(field int) float64 {
		value, _ := strconv.ParseFloat(string(fields[field-3]), 64)
		return value
	}
	uptimeText, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return resourceSnapshot{}, err
	}
	systemUptime, _ := strconv.ParseFloat(string(bytes.Fields(uptimeText)[0]), 64)
	uptime := systemUptime - number(22)/ticksPerSecond
	if uptime < 0 {
		uptime = 0
	}
	return resourceSnapshot{
		Variant:          variantName,
		Pid:              os.Getpid(),
		Threads:          int64(number(20)),
		RssBytes:         uint64(number(24)) * uint64(os.Getpagesize()),
		CPUUserSeconds:   Seconds(number(14) / ticksPerSecond),
		CPUSystemSeconds: Seconds(number(15) / ticksPerSecond),
		UptimeSeconds:    Seconds(uptime),
		Processes:        1,
		Workers:          runtime.GOMAXPROCS(0),
		DbPoolSize:       settings.DbPoolSize,
		DbRecycle:        settings.DbRecycle.String(),
	}, nil
}
