"""The small network most unit tests share: one FRR router, three web hosts, three services.

www-a and www-d prefer web1, www-b prefers web2; every host may serve every service.
Append a `slack:` or `policy:` section where a test needs one.
"""

THREE_HOSTS = """
defaults: {username: ops, key_file: /k, known_hosts: /kh}
routers:
  r1: {driver: frr, address: 198.18.7.11, lan: [192.0.2.0/27]}
hosts:
  web1: {address: 192.0.2.2}
  web2: {address: 192.0.2.3}
  web3: {address: 192.0.2.4}
services:
  www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2, web3], vips: [198.51.100.33]}
  www-b: {prefix: 198.51.100.64/27, router: r1, hosts: [web2, web3, web1], vips: [198.51.100.65]}
  www-d: {prefix: 198.51.100.96/27, router: r1, hosts: [web1, web2, web3], vips: [198.51.100.97]}
"""
