/**
 * Which host an SQS queue URL is sent to. Every queue URL ujr uses (the runtime's task and
 * dead-letter queues, the CLI's dead-letter queue) goes through {@link QueueAddress}.
 *
 * The problem: @aws-sdk/client-sqs sends each call to the host of its `QueueUrl` when that host
 * differs from the endpoint it resolved (its `queueUrlMiddleware`, on by default:
 * `useQueueUrlAsEndpoint: true`), and only logs a warning. It skips that only when the client was
 * built with an explicit `endpoint` option; an endpoint set by AWS_ENDPOINT_URL_SQS,
 * AWS_ENDPOINT_URL or `endpoint_url` in the shared AWS config file does not count. So a local run
 * pointed at LocalStack with a real queue URL (https://sqs.eu-west-1.amazonaws.com/…) sends its
 * messages to AWS while its tables and bucket are the emulator's.
 *
 * The rule: when an SQS endpoint is configured (the client's `endpoint` option, else what the SDK
 * reads from AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL or the config file's `endpoint_url`, unless
 * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS or the client's `ignoreConfiguredEndpointUrls` turns those
 * off), a queue URL whose origin (scheme, host, port) differs from the endpoint's is rebuilt on the
 * endpoint's origin, keeping its path (`/<account>/<queue-name>`). Its origin then equals the
 * endpoint's, so the SDK has nothing to redirect and no call leaves for the URL's host. Without a
 * configured endpoint the URL is used exactly as given. A value that is not an http(s) URL with a
 * `/<account>/<queue-name>` path is refused, naming the variable (or stack output) it came from.
 *
 * Why rebuild rather than refuse: a configured endpoint already sends every DynamoDB and S3 call of
 * the process to the emulator, with the table and bucket names as given; the queue name plays the
 * same part, so addressing the endpoint's queue of that name is what the rest of the process does.
 * It is also what the SDK itself does with an explicit `endpoint` option. Refusing would also
 * reject the emulators' own URLs: LocalStack hands out
 * `http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/q` while the endpoint is
 * usually `http://localhost:4566`, and a stack deployed to it has such URLs in its outputs. A
 * rebuilt URL cannot reach AWS: at worst the emulator has no queue of that name and says so.
 *
 * Turning the SDK's `useQueueUrlAsEndpoint` off instead would not do: it would cover only the
 * clients ujr builds (not injected ones), and without a configured endpoint it would send a queue
 * URL of another region to the client's region, a change where none is wanted.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { ConfigError } from '../../errors.js';

/** A queue URL, or the SQS endpoint, is malformed; the message names where it was set. */
export class QueueUrlError extends ConfigError {}

/** The endpoint SQS calls go to instead of AWS, and where it was set (for messages). */
export interface SqsEndpoint {
  url: URL;
  /** `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL`, the config file, or the client's `endpoint` option. */
  source: string;
}

const EXAMPLE = 'https://sqs.<region>.amazonaws.com/<account>/<queue-name>';

/**
 * Checks that `text` is an http(s) URL whose path ends in `/<account>/<queue-name>`.
 *
 * @param name Where the value was set, named in the error: `UJR_TASK_QUEUE_URL`, a stack output.
 * @throws {QueueUrlError} naming `name`, the value and the expected form.
 */
export function parseQueueUrl(text: string, name: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (error) {
    throw new QueueUrlError(`${name} is not a URL (${JSON.stringify(text)}); set it to the queue's URL, ${EXAMPLE}`, { cause: error });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new QueueUrlError(`${name} (${text}) is not an http(s) URL; set it to the queue's URL, ${EXAMPLE}`);
  }
  if (url.pathname.split('/').filter((segment) => segment !== '').length < 2) {
    throw new QueueUrlError(`${name} (${text}) is not a queue URL: its path must end in /<account>/<queue-name>, as in ${EXAMPLE}`);
  }
  return url;
}

/**
 * The rule (see the header): the queue URL to send, given the configured SQS endpoint. Returns
 * `queueUrl` unchanged without an endpoint or when its origin is the endpoint's; otherwise the
 * endpoint's origin followed by the queue URL's path.
 *
 * @throws {QueueUrlError} when `queueUrl` is malformed (naming `name`).
 * @example
 * ```ts
 * const endpoint = { url: new URL('http://localhost:4566'), source: 'AWS_ENDPOINT_URL' };
 * queueUrlOnEndpoint('https://sqs.us-east-1.amazonaws.com/000000000000/tasks', 'UJR_TASK_QUEUE_URL', endpoint);
 * // 'http://localhost:4566/000000000000/tasks'
 * ```
 */
export function queueUrlOnEndpoint(queueUrl: string, name: string, endpoint: SqsEndpoint | undefined): string {
  const url = parseQueueUrl(queueUrl, name);
  if (!endpoint || url.origin === endpoint.url.origin) return queueUrl;
  return `${endpoint.url.origin}${url.pathname}`;
}

/**
 * The SQS endpoint `client` is configured with, resolved as the SDK resolves it; `undefined` when
 * it uses AWS's regional endpoint.
 *
 * @param env Only used to say which variable set the endpoint (the SDK reads `process.env`).
 * @throws {QueueUrlError} when the configured endpoint is not a URL.
 */
export async function configuredSqsEndpoint(client: SQSClient, env: NodeJS.ProcessEnv = process.env): Promise<SqsEndpoint | undefined> {
  const config = client.config;
  if (config.isCustomEndpoint && config.endpoint) {
    const { protocol, hostname, port } = await config.endpoint();
    const text = `${protocol}//${hostname}${port ? `:${port}` : ''}`;
    return { url: parseEndpoint(text, "the SQS client's endpoint option"), source: "the SQS client's endpoint option" };
  }
  if (config.ignoreConfiguredEndpointUrls) return undefined;
  // The SDK's own lookup (environment, then the shared config file), memoized per client. Should a
  // later SDK drop it, the environment variables are read here so that they stay covered.
  const configured = config.serviceConfiguredEndpoint ? await config.serviceConfiguredEndpoint() : endpointFromEnv(env);
  if (!configured) return undefined;
  const source =
    configured === env.AWS_ENDPOINT_URL_SQS
      ? 'AWS_ENDPOINT_URL_SQS'
      : configured === env.AWS_ENDPOINT_URL
        ? 'AWS_ENDPOINT_URL'
        : `endpoint_url in the shared AWS config file (profile ${env.AWS_PROFILE ?? 'default'})`;
  return { url: parseEndpoint(configured, source), source };
}

function endpointFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS === 'true') return undefined;
  return env.AWS_ENDPOINT_URL_SQS || env.AWS_ENDPOINT_URL || undefined;
}

function parseEndpoint(text: string, source: string): URL {
  try {
    return new URL(text);
  } catch (error) {
    throw new QueueUrlError(`the SQS endpoint ${JSON.stringify(text)} (${source}) is not a URL; set it to the emulator's address, e.g. http://localhost:4566`, {
      cause: error,
    });
  }
}

/**
 * One queue URL as configured (checked at once) and as sent (on the client's configured endpoint,
 * resolved on first use and kept).
 *
 * @example
 * ```ts
 * const tasks = new QueueAddress(sqs, env.UJR_TASK_QUEUE_URL, 'UJR_TASK_QUEUE_URL');
 * await sqs.send(new SendMessageCommand({ QueueUrl: await tasks.url(), MessageBody: '{}' }));
 * ```
 */
export class QueueAddress {
  private resolved: Promise<string> | undefined;

  /** @throws {QueueUrlError} when `configured` is malformed (naming `name`). */
  constructor(
    private readonly client: SQSClient,
    readonly configured: string,
    readonly name: string,
  ) {
    parseQueueUrl(configured, name);
  }

  /** The URL to put in `QueueUrl`. */
  url(): Promise<string> {
    this.resolved ??= configuredSqsEndpoint(this.client).then((endpoint) => queueUrlOnEndpoint(this.configured, this.name, endpoint));
    return this.resolved;
  }
}
