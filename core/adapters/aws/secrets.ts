/**
 * Secret references on AWS: SSM parameters (GetParameter, decrypted) and Secrets Manager secrets
 * (GetSecretValue). Only translation lives here; parsing references, picking fields and caching
 * are in core/cloud/secrets.ts. Errors say which IAM permission or name to fix, never the value.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import {
  SecretAccessDeniedError,
  SecretNotFoundError,
  SecretReferenceError,
  SecretUnavailableError,
  type SecretRef,
  type SecretSource,
} from '../../cloud/secrets.js';

const SSM_NOT_FOUND = new Set(['ParameterNotFound', 'ParameterVersionNotFound']);
const SECRETS_NOT_FOUND = new Set(['ResourceNotFoundException']);
/** KMS refusals surface as these: the role may read the secret but not decrypt it. */
const KMS_DENIED = new Set(['InvalidKeyId', 'DecryptionFailure', 'KMSAccessDeniedException', 'KMSDisabledException']);
const DENIED = new Set(['AccessDeniedException', 'AccessDenied', 'UnauthorizedOperation']);

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'Error';
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** The ARN IAM policies grant on, with wildcards where the region and account are not known here. */
function ssmArn(name: string): string {
  if (name.startsWith('arn:')) return name.replace(/:\d+$/, '');
  const bare = name.replace(/:[^/:]+$/, ''); // "/p:3" or "/p:label" selects a version; the policy grants the name
  return `arn:aws:ssm:*:*:parameter${bare.startsWith('/') ? '' : '/'}${bare}`;
}

function secretArn(id: string): string {
  // Secrets Manager appends "-" and 6 random characters to a secret's ARN.
  return id.startsWith('arn:') ? id : `arn:aws:secretsmanager:*:*:secret:${id}-??????`;
}

/**
 * A {@link SecretSource} over SSM Parameter Store and Secrets Manager. Clients are injected (tests
 * mock them, Lambda passes its own); a missing one is built with defaults when first needed.
 *
 * @example
 * ```ts
 * const source = new AwsSecretSource({ ssm: new SSMClient({}) });
 * const params = await resolveSecrets(raw, source, new SecretCache(), { instanceId: 'collector-a' });
 * ```
 */
export class AwsSecretSource implements SecretSource {
  private ssm: SSMClient | undefined;
  private secretsManager: SecretsManagerClient | undefined;

  constructor(options: { ssm?: SSMClient; secretsManager?: SecretsManagerClient } = {}) {
    this.ssm = options.ssm;
    this.secretsManager = options.secretsManager;
  }

  get(ref: SecretRef): Promise<string> {
    return ref.store === 'ssm' ? this.parameter(ref.id) : this.secret(ref.id);
  }

  private async parameter(name: string): Promise<string> {
    this.ssm ??= new SSMClient({});
    let value: string | undefined;
    try {
      const response = await this.ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
      value = response.Parameter?.Value;
    } catch (error) {
      const what = `SSM parameter ${JSON.stringify(name)}`;
      const code = errorName(error);
      if (SSM_NOT_FOUND.has(code)) {
        throw new SecretNotFoundError(
          `${what} does not exist (${code}) in this account and region: create it (aws ssm put-parameter --name ${JSON.stringify(name)} --type SecureString --value …) or fix the reference`,
          { cause: error },
        );
      }
      if (KMS_DENIED.has(code)) {
        throw new SecretAccessDeniedError(
          `${what} cannot be decrypted (${code}): the runtime's role needs kms:Decrypt on the parameter's KMS key`,
          { cause: error },
        );
      }
      if (DENIED.has(code)) {
        throw new SecretAccessDeniedError(
          `the runtime's role may not read ${what} (${code}): grant it ssm:GetParameter on ${ssmArn(name)} (and kms:Decrypt on the key of a SecureString with a customer managed key)`,
          { cause: error },
        );
      }
      throw new SecretUnavailableError(`cannot read ${what} (GetParameter): ${errorText(error)}`, { cause: error });
    }
    if (value === undefined) throw new SecretUnavailableError(`GetParameter returned no value for SSM parameter ${JSON.stringify(name)}`);
    return value;
  }

  private async secret(id: string): Promise<string> {
    this.secretsManager ??= new SecretsManagerClient({});
    const what = `Secrets Manager secret ${JSON.stringify(id)}`;
    let response;
    try {
      response = await this.secretsManager.send(new GetSecretValueCommand({ SecretId: id }));
    } catch (error) {
      const code = errorName(error);
      if (SECRETS_NOT_FOUND.has(code)) {
        throw new SecretNotFoundError(
          `${what} does not exist (${code}) in this account and region: create it (aws secretsmanager create-secret --name ${JSON.stringify(id)} --secret-string …) or fix the reference`,
          { cause: error },
        );
      }
      if (code === 'InvalidRequestException' && error instanceof Error && /deletion/i.test(error.message)) {
        throw new SecretNotFoundError(
          `${what} is scheduled for deletion (${code}): restore it (aws secretsmanager restore-secret --secret-id ${JSON.stringify(id)}) or point the reference at another secret`,
          { cause: error },
        );
      }
      if (KMS_DENIED.has(code)) {
        throw new SecretAccessDeniedError(
          `${what} cannot be decrypted (${code}): the runtime's role needs kms:Decrypt on the secret's KMS key`,
          { cause: error },
        );
      }
      if (DENIED.has(code)) {
        throw new SecretAccessDeniedError(
          `the runtime's role may not read ${what} (${code}): grant it secretsmanager:GetSecretValue on ${secretArn(id)} (and kms:Decrypt on the key if the secret uses a customer managed key)`,
          { cause: error },
        );
      }
      throw new SecretUnavailableError(`cannot read ${what} (GetSecretValue): ${errorText(error)}`, { cause: error });
    }
    if (response.SecretString !== undefined) return response.SecretString;
    if (response.SecretBinary !== undefined) {
      throw new SecretReferenceError(`${what} holds binary data; ujr reads text secrets only: store it as a secret string (base64 if need be)`);
    }
    throw new SecretUnavailableError(`GetSecretValue returned no value for ${what}`);
  }
}
