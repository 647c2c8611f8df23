package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuReading is CPU time spent so far by this process (auditd, embedded
// NATS and the bench clients) and by the whole machine (Postgres included).
type cpuReading struct {
	process time.Duration
	machine time.Duration
}

// readCPU reads both counters; machine is zero where /proc/stat is missing.
func readCPU() cpuReading {
	var r cpuReading
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		r.process = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	r.machine = machineBusy()
	return r
}

// machineBusy is the busy time of all CPUs since boot: the /proc/stat "cpu"
// line's user, nice, system, irq and softirq ticks. Idle, iowait and steal
// (time the hypervisor gave to other guests) are not work done here.
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 8 || fields[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, f := range fields[1:] {
		if i == 3 || i == 4 || i == 7 { // idle, iowait, steal
			continue
		}
		if i >= 8 { // guest time is already counted in user time
			break
		}
		n, _ := strconv.ParseInt(f, 10, 64)
		ticks += n
	}
	const userHZ = 100 // fixed by the kernel ABI for /proc/stat
	return time.Duration(ticks) * time.Second / userHZ
}

// perEvent reports the CPU spent between r and now per event, in
// microseconds, for the machine and for this process.
func (r cpuReading) perEvent(events float64) (machine, process float64) {
	now := readCPU()
	if events == 0 {
		return 0, 0
	}
	machine = float64(now.machine-r.machine) / float64(time.Microsecond) / events
	process = float64(now.process-r.process) / float64(time.Microsecond) / events
	return machine, process
}
