import { describe, expect, it } from 'vitest';
import {
  forbiddenAddress,
  Grant,
  grantsFromRules,
  grantTooBroad,
  isGranted,
  NetworkRules,
  parseGrants,
} from '../../src/contracts/policy/network-policy.js';
import { parseNetworkCommand } from '../../src/gateway/commands/network-command.js';
import { parseAuthority } from '../../src/worker/egress/addresses.js';
import { SkillPermissions } from '../../src/worker/skills/manifest.js';

describe('network grants', () => {
  const grants = parseGrants('pypi.org, *.github.com  api.example.test:8443');

  it('matches exact names, *.suffix sub-domains and ports', () => {
    expect(isGranted(grants, 'pypi.org', 443)).toBe(true);
    expect(isGranted(grants, 'PyPI.org.', 80)).toBe(true);
    expect(isGranted(grants, 'evil-pypi.org', 443)).toBe(false);
    expect(isGranted(grants, 'files.pypi.org', 443)).toBe(false);
    expect(isGranted(grants, 'api.github.com', 443)).toBe(true);
    expect(isGranted(grants, 'github.com', 443)).toBe(false);
    expect(isGranted(grants, 'github.com.evil.net', 443)).toBe(false);
    expect(isGranted(grants, 'api.example.test', 8443)).toBe(true);
    expect(isGranted(grants, 'api.example.test', 443)).toBe(false);
  });

  it('refuses malformed grants', () => {
    for (const bad of ['http://x.com', 'a_b', '*.', '*', 'x.com:99999x', '../etc']) {
      expect(() => parseGrants(bad), bad).toThrow();
    }
  });

  it('refuses private, loopback and metadata address literals as grants, and keeps public ones', () => {
    for (const bad of ['10.0.0.1', '127.0.0.1:8080', '169.254.169.254', '192.168.1.5:443', '100.64.0.1']) {
      expect(Grant.safeParse(bad).success, bad).toBe(false);
    }
    expect(Grant.safeParse('10.0.0.1').error?.issues[0]?.message).toMatch(/public host .*private/);
    expect(Grant.parse('203.0.113.7:443')).toBe('203.0.113.7:443');
  });

  it('reads config rules per conversation prefix and names a bad rule', () => {
    const rules = NetworkRules.parse('slack:T1:C1=pypi.org;web:=example.com,*.example.org');
    expect(grantsFromRules(rules, 'slack:T1:C1:1700000000.1')).toEqual(['pypi.org']);
    expect(grantsFromRules(rules, 'slack:T1:C2:1700000000.1')).toEqual([]);
    expect(grantsFromRules(rules, 'web:alice')).toEqual(['example.com', '*.example.org']);
    expect(NetworkRules.parse(undefined)).toEqual([]);
    expect(() => NetworkRules.parse('nonsense')).toThrow(/a rule is/);
    expect(() => NetworkRules.parse('web:=not_a_host')).toThrow(/web:=not_a_host/);
  });

  it('names a Discord channel, whose threads it then covers, and matches whole id segments', () => {
    const rules = NetworkRules.parse('discord:100:200=pypi.org;slack:T1:C1=example.com');
    expect(grantsFromRules(rules, 'discord:100:200:300')).toEqual(['pypi.org']);
    expect(grantsFromRules(rules, 'discord:100:2000:300')).toEqual([]);
    expect(grantsFromRules(rules, 'discord:100:201:300')).toEqual([]);
    expect(grantsFromRules(rules, 'slack:T1:C12:1700000000.1')).toEqual([]);
  });
});

describe('grants no wider than one registrable domain, on web ports unless a port is named', () => {
  it('refuses wildcards over a public suffix from config, chat and skill manifests alike', () => {
    for (const broad of [
      '*.com',
      '*.co.uk',
      '*.test',
      '*.github.io',
      '*.s3.amazonaws.com',
      '*.3.4',
      '*.com:443',
    ]) {
      expect(Grant.safeParse(broad).success, broad).toBe(false);
      expect(() => NetworkRules.parse(`web:=${broad}`), broad).toThrow(/public suffix|IP addresses/);
      expect(parseNetworkCommand(['allow', broad]), broad).toMatchObject({ action: 'invalid' });
      expect(SkillPermissions.safeParse({ hosts: [broad] }).success, broad).toBe(false);
      expect(grantTooBroad(broad), broad).toBeDefined();
      // Even if one got into storage some other way, it grants nothing.
      expect(isGranted([broad], 'a.b.com', 443), broad).toBe(false);
    }
    for (const fine of ['*.github.com', '*.example.co.uk', '*.api.example.test:8443', 'com', 'github.io']) {
      expect(Grant.safeParse(fine).success, fine).toBe(true);
    }
  });

  it('lets a grant without a port reach 80 and 443 only', () => {
    const grants = parseGrants('mail.example.com *.example.org ssh.example.net:22');
    for (const port of [80, 443]) expect(isGranted(grants, 'mail.example.com', port)).toBe(true);
    for (const port of [25, 22, 587, 8080]) expect(isGranted(grants, 'mail.example.com', port)).toBe(false);
    expect(isGranted(grants, 'a.example.org', 25)).toBe(false);
    expect(isGranted(grants, 'ssh.example.net', 22)).toBe(true);
    expect(isGranted(grants, 'ssh.example.net', 443)).toBe(false);
  });
});

describe('forbidden addresses', () => {
  it('refuses local-use NAT64, IPv4-compatible, site-local and IPv4-translated IPv6', () => {
    for (const ip of ['64:ff9b:1::a00:1', '::7f00:1', '::a00:5', 'fec0::1', 'feff::1', '::ffff:0:a00:1']) {
      expect(forbiddenAddress(ip), ip).toBeDefined();
    }
    expect(forbiddenAddress('::ffff:cb00:7107', new Set(['203.0.113.7']))).toMatch(/sandbot host itself/);
  });

  it('refuses loopback, private, link-local, metadata and unique-local addresses', () => {
    for (const ip of [
      '127.0.0.1',
      '10.1.2.3',
      '172.20.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '0.0.0.0',
      '100.64.0.1',
      '::1',
      'fd00:ec2::254',
      'fe80::1',
      '::ffff:127.0.0.1',
      '::ffff:169.254.169.254',
      '224.0.0.1',
    ]) {
      expect(forbiddenAddress(ip), ip).toBeDefined();
    }
  });

  it('allows public and documentation addresses', () => {
    for (const ip of ['1.1.1.1', '198.51.100.7', '203.0.113.9', '2001:db8::1', '2606:4700::1111']) {
      expect(forbiddenAddress(ip), ip).toBeUndefined();
    }
  });
});

describe('CONNECT targets and admin network commands', () => {
  it('parses host:port authorities', () => {
    expect(parseAuthority('Example.com:443')).toEqual({ host: 'example.com', port: 443 });
    expect(parseAuthority('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(parseAuthority('example.com')).toBeUndefined();
    expect(parseAuthority('example.com:0')).toBeUndefined();
  });

  it('parses `network allow|off`', () => {
    expect(parseNetworkCommand([])).toEqual({ action: 'show' });
    expect(parseNetworkCommand(['off'])).toEqual({ action: 'off' });
    expect(parseNetworkCommand(['allow', 'pypi.org,*.github.com', 'x.org:8080'])).toEqual({
      action: 'allow',
      grants: ['pypi.org', '*.github.com', 'x.org:8080'],
    });
    expect(parseNetworkCommand(['allow'])).toMatchObject({ action: 'invalid' });
    expect(parseNetworkCommand(['allow', 'http://x'])).toMatchObject({
      action: 'invalid',
      message: expect.stringContaining('"http://x"'),
    });
    expect(parseNetworkCommand(['open'])).toMatchObject({ action: 'invalid' });
  });
});

describe('the host itself', () => {
  it('refuses the host’s own addresses, public ones included, however written', () => {
    const local = new Set(['203.0.113.7', '2001:db8::7']);
    expect(forbiddenAddress('203.0.113.7', local)).toMatch(/sandbot host itself/);
    expect(forbiddenAddress('::ffff:203.0.113.7', local)).toMatch(/sandbot host itself/);
    expect(forbiddenAddress('2001:DB8::7', local)).toMatch(/sandbot host itself/);
    expect(forbiddenAddress('203.0.113.8', local)).toBeUndefined();
  });
});
