package chserver

import (
	"os/exec"
	"syscall"
)

// setProcAttrs puts the server in its own process group and has the kernel
// kill it if this process dies first, so no test leaves a server behind.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
