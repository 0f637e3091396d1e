package dataplane

import (
	"encoding/hex"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The identity of BPF objects, read with BPF_OBJ_GET_INFO_BY_FD alone.
// checkPins runs before every command's first write or read, and needs only
// ids, names, tags and the maps a program uses; cilium/ebpf's Info() also
// reads /proc/self/fdinfo and probes the kernel, which cost a short-lived
// command more than the rest of its work (about 1.5 ms of a 20 ms command).

// progIdent is what checkPins compares of a program.
type progIdent struct {
	Type   ebpf.ProgramType
	ID     ebpf.ProgramID
	Tag    string // hex, as ebpf.ProgramInfo.Tag
	Name   string
	MapIDs []ebpf.MapID
}

// bpfProgInfo is the head of struct bpf_prog_info (uapi/linux/bpf.h), up to
// name: the fields progIdent needs. The kernel fills as much as info_len
// asks for.
type bpfProgInfo struct {
	Type            uint32
	ID              uint32
	Tag             [8]byte
	JitedProgLen    uint32
	XlatedProgLen   uint32
	JitedProgInsns  uint64
	XlatedProgInsns uint64
	LoadTime        uint64
	CreatedByUID    uint32
	NrMapIDs        uint32
	MapIDs          unsafe.Pointer
	Name            [16]byte
}

// bpfMapInfo is the head of struct bpf_map_info, up to name.
type bpfMapInfo struct {
	Type       uint32
	ID         uint32
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	MapFlags   uint32
	Name       [16]byte
}

// bpf is the bpf(2) system call with attr as its argument.
func bpf(cmd int, attr unsafe.Pointer, size uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return 0, errno
	}
	return r, nil
}

// objInfo fills info (of size size) for the object fd refers to.
func objInfo(fd int, info unsafe.Pointer, size uint32) error {
	attr := struct {
		Fd      uint32
		InfoLen uint32
		Info    unsafe.Pointer
	}{uint32(fd), size, info}
	_, err := bpf(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(info)
	return err
}

// pinnedProgIdent reads the identity of the program pinned at path; an
// error wraps os.ErrNotExist when nothing is pinned there.
func pinnedProgIdent(path string) (progIdent, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return progIdent{}, err
	}
	attr := struct {
		Path  unsafe.Pointer
		Fd    uint32
		Flags uint32
	}{Path: unsafe.Pointer(p)}
	fd, err := bpf(unix.BPF_OBJ_GET, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(p)
	if err != nil {
		return progIdent{}, fmt.Errorf("open pinned program %s: %w", path, err)
	}
	defer unix.Close(int(fd))
	return progIdentOf(int(fd))
}

// progIdentOf reads the identity of the program fd refers to.
func progIdentOf(fd int) (progIdent, error) {
	ids := make([]uint32, 16)
	for {
		info := bpfProgInfo{NrMapIDs: uint32(len(ids)), MapIDs: unsafe.Pointer(&ids[0])}
		if err := objInfo(fd, unsafe.Pointer(&info), uint32(unsafe.Sizeof(info))); err != nil {
			return progIdent{}, err
		}
		if int(info.NrMapIDs) > len(ids) {
			ids = make([]uint32, info.NrMapIDs)
			continue
		}
		if info.Type == 0 && info.ID == 0 {
			return progIdent{}, fmt.Errorf("not a program")
		}
		out := progIdent{Type: ebpf.ProgramType(info.Type), ID: ebpf.ProgramID(info.ID), Tag: hex.EncodeToString(info.Tag[:]), Name: unix.ByteSliceToString(info.Name[:])}
		for _, id := range ids[:info.NrMapIDs] {
			out.MapIDs = append(out.MapIDs, ebpf.MapID(id))
		}
		return out, nil
	}
}

// mapIdentOf returns the id and kernel name of the map fd refers to.
func mapIdentOf(fd int) (ebpf.MapID, string, error) {
	var info bpfMapInfo
	if err := objInfo(fd, unsafe.Pointer(&info), uint32(unsafe.Sizeof(info))); err != nil {
		return 0, "", err
	}
	return ebpf.MapID(info.ID), unix.ByteSliceToString(info.Name[:]), nil
}

// mapNameOfID returns the kernel name of the map with id, "" if it cannot
// be opened.
func mapNameOfID(id ebpf.MapID) string {
	attr := struct {
		ID        uint32
		NextID    uint32
		OpenFlags uint32
	}{ID: uint32(id)}
	fd, err := bpf(unix.BPF_MAP_GET_FD_BY_ID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return ""
	}
	defer unix.Close(int(fd))
	_, name, err := mapIdentOf(int(fd))
	if err != nil {
		return ""
	}
	return name
}
