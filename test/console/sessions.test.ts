// Console sessions as plain values: they expire, their number is bounded (the oldest go first), a logout ends one, and the cookie is HttpOnly, Secure, SameSite=Strict.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConsoleSessions, MAX_SESSIONS, SESSION_COOKIE, SESSION_TTL_S } from '../../src/console/sessions.js';
import { ManualClock } from '../../src/util/clock.js';

describe('console sessions', () => {
  test('a session is valid until its age runs out; an unknown or empty id never is', () => {
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
    const s = new ConsoleSessions(clock);
    const id = s.create();
    assert.match(id, /^[\w-]{43}$/);
    assert.equal(s.valid(id), true);
    assert.equal(s.valid(undefined), false);
    assert.equal(s.valid(''), false);
    assert.equal(s.valid(id.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'))), false);
    clock.set(Date.parse('2026-01-01T00:00:00Z') + SESSION_TTL_S * 1000 - 1);
    assert.equal(s.valid(id), true);
    clock.set(Date.parse('2026-01-01T00:00:00Z') + SESSION_TTL_S * 1000);
    assert.equal(s.valid(id), false);
  });

  test('at most MAX_SESSIONS are kept: a flood of logins pushes out the oldest, not the host', () => {
    const s = new ConsoleSessions(new ManualClock());
    const first = s.create();
    const second = s.create();
    for (let i = 0; i < MAX_SESSIONS - 1; i++) s.create();
    assert.equal(s.valid(first), false);
    assert.equal(s.valid(second), true);
  });

  test('logout drops the session; the cookie is read back from a Cookie header among others', () => {
    const s = new ConsoleSessions(new ManualClock());
    const id = s.create();
    assert.equal(ConsoleSessions.fromRequest(`a=1; ${SESSION_COOKIE}=${id}; b=2`), id);
    assert.equal(ConsoleSessions.fromRequest('a=1'), undefined);
    assert.equal(ConsoleSessions.fromRequest(undefined), undefined);
    s.drop(id);
    assert.equal(s.valid(id), false);
    assert.equal(ConsoleSessions.cookie(id), `${SESSION_COOKIE}=${id}; Path=/; Max-Age=${SESSION_TTL_S}; HttpOnly; Secure; SameSite=Strict`);
    assert.match(ConsoleSessions.clearCookie(), /Max-Age=0; HttpOnly; Secure; SameSite=Strict$/);
  });
});
