// The seed's HAProxy config, made to run unprivileged under the lab's state directory and to
// notice a stopped nova-api within a second and a half instead of after several.
export interface LabHaproxyInput {
  dir: string;
  bind: { address: string; port: number };
  backend: string;
  servers: Array<{ name: string; address: string; port: number }>;
  /**
   * HAProxy's `timeout check`. 2 s for the stand-ins; the real nova-api (two uwsgi workers)
   * answered its root in more than 2 s under the probes' authenticated load on this 2-core
   * machine at load average 25, and the preflight then found it DOWN (L7TOUT).
   */
  checkTimeoutSeconds?: number;
}

export function labHaproxyConfig(c: LabHaproxyInput): string {
  return `# Written by the nova-upgrade lab. No chroot, user or group: it runs as whoever runs the lab.
# HAProxy cannot write a file itself; the access log goes to a ring buffer instead, read with
# \`echo "show events httplog" | socat <dir>/haproxy.sock stdio\`.
ring httplog
    description "nova-api access log"
    format iso
    maxlen 1200
    size 262144

global
    log ring@httplog local0
    stats socket ${c.dir}/haproxy.sock mode 600 level admin
    stats timeout 2m
    maxconn 4000

defaults
    log global
    mode http
    option httplog
    option redispatch
    retries 3
    maxconn 8000
    stats enable
    timeout http-request 10s
    timeout queue 1m
    timeout connect 10s
    timeout client 1m
    timeout server 1m
    timeout check ${c.checkTimeoutSeconds ?? 2}s

frontend nova-api-vip
    bind ${c.bind.address}:${c.bind.port}
    default_backend ${c.backend}

backend ${c.backend}
    balance roundrobin
    option httpchk GET /
    http-check expect status 200
${c.servers.map((s) => `    server ${s.name} ${s.address}:${s.port} check inter 500ms`).join('\n')}
`;
}
