package collective

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// testTLS returns a TLS config (a certificate for 127.0.0.1 signed by a
// fresh CA, and that CA as the roots) for ranks that verify each other.
func testTLS(t *testing.T) *tls.Config {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ring CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "rank"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		RootCAs:      roots, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13,
	}
}

// TestTLS forms a ring over TLS and all-reduces on it; a plain-TCP peer
// is refused while it forms.
func TestTLS(t *testing.T) {
	cfg := testTLS(t)
	lns, addrs := listeners(t, 3)
	refused := make(chan error, 1)
	go func() {
		conn, err := net.Dial("tcp", addrs[1])
		if err != nil {
			refused <- err
			return
		}
		defer conn.Close()
		plain := Config{Rank: 0, Size: 3, Peers: addrs, Secret: testSecret, Session: "job/attempt-1"}
		_, err = clientHandshake(conn, &plain, 1)
		refused <- err
	}()
	comms := make([]*Comm, 3)
	errs := onEvery(comms, func(r int, _ *Comm) error {
		var err error
		comms[r], err = New(context.Background(), Config{Rank: r, Size: 3, Peers: addrs, Listener: lns[r], Secret: testSecret,
			Session: "job/attempt-1", TLS: cfg, Timeout: 5 * time.Second})
		return err
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		defer comms[r].Close()
	}
	if err := <-refused; err == nil {
		t.Fatal("a plain-TCP handshake with a TLS ring succeeded")
	}
	buf := [][]int64{{1, 2}, {10, 20}, {100, 200}}
	errs = onEvery(comms, func(r int, c *Comm) error { return c.AllReduceInt64(context.Background(), Tag{}, buf[r], Sum) })
	for r, err := range errs {
		if err != nil || buf[r][0] != 111 || buf[r][1] != 222 {
			t.Fatalf("rank %d: %v, %v", r, err, buf[r])
		}
	}
}
