package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// ContentType is the media type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Server answers GET and HEAD for /metrics, /healthz and /readyz over
// HTTP/1.1, one request per connection: what a Prometheus scrape and a
// Kubernetes probe need, without net/http (see the package comment).
type Server struct {
	Options Options
	// Live and Ready, when set, answer /healthz and /readyz beside the
	// root's check: nil is 200, an error 503 with its text. Unset, both
	// paths answer whether the bpffs root can be read.
	Live, Ready func() error
	mu          sync.Mutex // one scrape at a time: each reads every pin
	wg          sync.WaitGroup
}

// Serve accepts connections on ln until it is closed; it then waits for
// the requests being answered.
func (s *Server) Serve(ln net.Listener) error {
	defer s.wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

// handle answers one request.
func (s *Server) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReaderSize(c, 4096)
	line, err := br.ReadString('\n')
	if err != nil {
		return
	}
	// The headers are read and ignored (bounded): the answer never varies.
	for i := 0; ; i++ {
		h, err := br.ReadString('\n')
		if err != nil || i > 100 {
			return
		}
		if strings.TrimRight(h, "\r\n") == "" {
			break
		}
	}
	parts := strings.Fields(line)
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
		reply(c, "400 Bad Request", "text/plain", []byte("bad request\n"), true)
		return
	}
	method, path := parts[0], parts[1]
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	body := method != "HEAD"
	if method != "GET" && method != "HEAD" {
		reply(c, "405 Method Not Allowed", "text/plain", []byte("GET or HEAD only\n"), body)
		return
	}
	switch path {
	case "/metrics":
		var b bytes.Buffer
		s.mu.Lock()
		err := Write(&b, s.Options)
		s.mu.Unlock()
		if err != nil {
			reply(c, "500 Internal Server Error", "text/plain", []byte(err.Error()+"\n"), body)
			return
		}
		reply(c, "200 OK", ContentType, b.Bytes(), body)
	case "/healthz", "/readyz":
		check := s.Live
		if path == "/readyz" {
			check = s.Ready
		}
		if err := s.health(check); err != nil {
			reply(c, "503 Service Unavailable", "text/plain", []byte(err.Error()+"\n"), body)
			return
		}
		reply(c, "200 OK", "text/plain", []byte("ok\n"), body)
	default:
		reply(c, "404 Not Found", "text/plain", []byte("/metrics, /healthz or /readyz\n"), body)
	}
}

// health is the root's check, then check's if there is one.
func (s *Server) health(check func() error) error {
	if _, err := s.Options.Root.Dataplanes(); err != nil {
		return err
	}
	if check != nil {
		return check()
	}
	return nil
}

func reply(c net.Conn, status, contentType string, payload []byte, body bool) {
	fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", status, contentType, len(payload))
	if body {
		_, _ = c.Write(payload)
	}
}
