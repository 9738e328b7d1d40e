package tabular

import "syscall"

const oDirect = syscall.O_DIRECT
