// One cluster's sign requests made in the same turn of the event loop go to the CA service as one sign-batch call: the
// CSR signer has many requests in flight, and one HTTP/2 request for several costs both processes less than one each.
import { TrustplaneError, isReason } from '../util/errors.js';
import { MAX_BATCH, type BatchResult, type IssuedCertificate, type SignInput } from './api.js';

export interface BatchSigningClient {
  sign(cluster: string, req: SignInput & { csr: string }): Promise<IssuedCertificate>;
  signBatch(cluster: string, requests: Array<SignInput & { csr: string }>): Promise<BatchResult[]>;
}

interface Waiting {
  input: SignInput & { csr: string };
  resolve(c: IssuedCertificate): void;
  reject(e: unknown): void;
}

/**
 * Each request gets what a sign call alone would give: its certificate, or a TrustplaneError with the CA's reason (the
 * service signs a batch item by item, through the same path as a single request). A lone request is sent as a sign.
 */
export class SignBatcher {
  private waiting: Waiting[] = [];
  private scheduled = false;

  constructor(
    private readonly client: BatchSigningClient,
    private readonly cluster: string,
  ) {}

  sign(input: SignInput & { csr: string }): Promise<IssuedCertificate> {
    return new Promise<IssuedCertificate>((resolve, reject) => {
      this.waiting.push({ input, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.waiting.length > 0) this.send(this.waiting.splice(0, MAX_BATCH));
  }

  private send(batch: Waiting[]): void {
    if (batch.length === 1) {
      const [w] = batch;
      this.client.sign(this.cluster, w.input).then(w.resolve, w.reject);
      return;
    }
    this.client.signBatch(this.cluster, batch.map((w) => w.input)).then(
      (results) => {
        batch.forEach((w, i) => {
          const r = results[i];
          if (!r) w.reject(new TrustplaneError('Internal', `the CA service answered ${results.length} results for ${batch.length} sign requests`));
          else if ('ok' in r) w.resolve(r.ok);
          else w.reject(new TrustplaneError(isReason(r.error.reason) ? r.error.reason : 'Internal', r.error.message, r.error.hint));
        });
      },
      (e: unknown) => batch.forEach((w) => w.reject(e)),
    );
  }
}
