package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// tokenAuth checks basic-auth credentials in the Flight handshake and issues
// random bearer tokens, held in memory only: a restarted server forgets them,
// as a real one may, so clients must be able to authenticate again.
type tokenAuth struct {
	user, password, static string

	mu     sync.Mutex
	issued map[string]struct{}
}

func newTokenAuth(user, password, static string) *tokenAuth {
	return &tokenAuth{user: user, password: password, static: static, issued: map[string]struct{}{}}
}

func (a *tokenAuth) Validate(user, password string) (string, error) {
	if a.user == "" ||
		subtle.ConstantTimeCompare([]byte(user), []byte(a.user)) != 1 ||
		subtle.ConstantTimeCompare([]byte(password), []byte(a.password)) != 1 {
		return "", status.Error(codes.Unauthenticated, "invalid user name or password")
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", status.Error(codes.Internal, err.Error())
	}
	token := hex.EncodeToString(raw)
	a.mu.Lock()
	a.issued[token] = struct{}{}
	a.mu.Unlock()
	return token, nil
}

func (a *tokenAuth) IsValid(token string) (interface{}, error) {
	if a.static != "" && subtle.ConstantTimeCompare([]byte(token), []byte(a.static)) == 1 {
		return "static-token", nil
	}
	a.mu.Lock()
	_, ok := a.issued[token]
	a.mu.Unlock()
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "invalid or expired bearer token")
	}
	return a.user, nil
}
