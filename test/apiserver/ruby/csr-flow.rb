# The CSR flow through a Kubernetes client library nobody here wrote (Debian's ruby-kubeclient): list nodes, create a
# CSR, approve it through /approval, watch until issued, delete. Run by test/apiserver/ruby-kubeclient.test.ts.
#
#   ruby csr-flow.rb SERVER CA_FILE CERT_FILE KEY_FILE CSR_PEM_FILE NAME
#
# Prints one line per step ("nodes ...", "created ...", "approved ...", "issued ...", "deleted ...") and exits 0, or
# prints what failed and exits 1.
require 'kubeclient'
require 'base64'
require 'json'
require 'openssl'

server, ca_file, cert_file, key_file, csr_file, name = ARGV
abort "usage: #{$PROGRAM_NAME} SERVER CA_FILE CERT_FILE KEY_FILE CSR_PEM_FILE NAME" unless name

$stdout.sync = true
ssl = {
  client_cert: OpenSSL::X509::Certificate.new(File.read(cert_file)),
  client_key: OpenSSL::PKey.read(File.read(key_file)),
  ca_file: ca_file,
  verify_ssl: OpenSSL::SSL::VERIFY_PEER
}
core = Kubeclient::Client.new("#{server}/api", 'v1', ssl_options: ssl)
certs = Kubeclient::Client.new("#{server}/apis/certificates.k8s.io", 'v1', ssl_options: ssl)

begin
  nodes = core.get_nodes
  puts "nodes #{nodes.map { |n| n.metadata.name }.join(',')}"

  csr = Kubeclient::Resource.new(
    metadata: { name: name },
    spec: {
      request: Base64.strict_encode64(File.read(csr_file)),
      signerName: 'kubernetes.io/kube-apiserver-client',
      usages: ['client auth']
    }
  )
  created = certs.create_certificate_signing_request(csr)
  puts "created #{created.metadata.name} status=#{created.status.to_h.to_json}"

  # Approve as `kubectl certificate approve` does: read, add the condition to status.conditions, PUT to /approval.
  # Setting status.conditions needs `status` in what was read: a null status would make this a NoMethodError.
  current = certs.get_certificate_signing_request(name)
  current.status.conditions = [{ type: 'Approved', status: 'True', reason: 'RubyKubeclientApprove', message: 'approved by ruby-kubeclient' }]
  body = current.to_h.to_json
  response = certs.rest_client["certificatesigningrequests/#{name}/approval"].put(body, { 'Content-Type' => 'application/json' }.merge(certs.headers))
  approved = JSON.parse(response.body)
  puts "approved #{approved['status']['conditions'].map { |c| c['type'] }.join(',')}"

  # Watch from what was read until the signer has written the certificate.
  issued = nil
  certs.watch_certificate_signing_requests(field_selector: "metadata.name=#{name}", resource_version: approved['metadata']['resourceVersion']) do |notice|
    cert = notice.object.status && notice.object.status.certificate
    if cert && !cert.empty?
      issued = OpenSSL::X509::Certificate.new(Base64.decode64(cert))
      break
    end
  end
  raise 'the watch ended before the certificate was issued' unless issued
  puts "issued #{issued.subject} by #{issued.issuer}"

  certs.delete_certificate_signing_request(name)
  begin
    certs.get_certificate_signing_request(name)
    raise "#{name} is still there after its deletion"
  rescue Kubeclient::ResourceNotFoundError
    puts "deleted #{name}"
  end
rescue Kubeclient::HttpError => e
  warn "failed: HTTP #{e.error_code}: #{e.message}"
  exit 1
end
