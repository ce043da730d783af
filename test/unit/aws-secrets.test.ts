/** The AWS secret source at the SDK edge (no emulator exists for SSM or Secrets Manager here). */
import { GetSecretValueCommand, SecretsManagerClient, SecretsManagerServiceException } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, SSMClient, SSMServiceException } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { AwsSecretSource } from '../../core/adapters/aws/secrets.js';
import {
  resolveSecrets,
  SecretAccessDeniedError,
  SecretCache,
  SecretNotFoundError,
  SecretReferenceError,
  SecretUnavailableError,
} from '../../core/cloud/secrets.js';
import { isRetryable } from '../../core/errors.js';

const config = { region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } };
const ssmClient = new SSMClient(config);
const secretsClient = new SecretsManagerClient(config);
const ssm = mockClient(ssmClient);
const secretsManager = mockClient(secretsClient);
const source = new AwsSecretSource({ ssm: ssmClient, secretsManager: secretsClient });

function ssmError(name: string, message = name): SSMServiceException {
  return new SSMServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: 400 }, message });
}

function secretsError(name: string, message = name): SecretsManagerServiceException {
  return new SecretsManagerServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: 400 }, message });
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const caught: unknown = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(caught instanceof Error)) throw new Error('expected the promise to reject with an Error');
  return caught;
}

afterEach(() => {
  ssm.reset();
  secretsManager.reset();
});

describe('AwsSecretSource: SSM', () => {
  it('reads a parameter decrypted', async () => {
    ssm.on(GetParameterCommand, { Name: '/ujr/db', WithDecryption: true }).resolves({ Parameter: { Name: '/ujr/db', Value: 'hunter2' } });

    expect(await source.get({ store: 'ssm', id: '/ujr/db' })).toBe('hunter2');
    expect(ssm.commandCalls(GetParameterCommand)[0]?.args[0].input).toEqual({ Name: '/ujr/db', WithDecryption: true });
  });

  it('maps ParameterNotFound to SecretNotFoundError saying how to create it', async () => {
    ssm.on(GetParameterCommand).rejects(ssmError('ParameterNotFound'));

    const error = await failure(source.get({ store: 'ssm', id: '/ujr/db' }));

    expect(error).toBeInstanceOf(SecretNotFoundError);
    expect(error.message).toContain('SSM parameter "/ujr/db" does not exist (ParameterNotFound)');
    expect(error.message).toContain('aws ssm put-parameter --name "/ujr/db" --type SecureString');
    expect(isRetryable(error)).toBe(false);
    expect(error.cause).toBeInstanceOf(SSMServiceException);
  });

  it('maps AccessDeniedException to SecretAccessDeniedError naming ssm:GetParameter and the parameter ARN', async () => {
    ssm.on(GetParameterCommand).rejects(ssmError('AccessDeniedException', 'User is not authorized to perform: ssm:GetParameter'));

    const error = await failure(source.get({ store: 'ssm', id: '/ujr/db:3' }));

    expect(error).toBeInstanceOf(SecretAccessDeniedError);
    expect(error.message).toContain('grant it ssm:GetParameter on arn:aws:ssm:*:*:parameter/ujr/db');
    expect(error.message).toContain('kms:Decrypt');
    expect(isRetryable(error)).toBe(false);
  });

  it('maps a KMS refusal to SecretAccessDeniedError naming kms:Decrypt', async () => {
    ssm.on(GetParameterCommand).rejects(ssmError('InvalidKeyId'));

    await expect(source.get({ store: 'ssm', id: 'plain-name' })).rejects.toThrow(
      /SSM parameter "plain-name" cannot be decrypted \(InvalidKeyId\): the runtime's role needs kms:Decrypt/,
    );
  });

  it('maps throttling to a retryable SecretUnavailableError', async () => {
    ssm.on(GetParameterCommand).rejects(ssmError('ThrottlingException', 'Rate exceeded'));

    const error = await failure(source.get({ store: 'ssm', id: '/ujr/db' }));

    expect(error).toBeInstanceOf(SecretUnavailableError);
    expect(error.message).toBe('cannot read SSM parameter "/ujr/db" (GetParameter): ThrottlingException: Rate exceeded');
    expect(isRetryable(error)).toBe(true);
  });
});

describe('AwsSecretSource: Secrets Manager', () => {
  it('reads a secret string, for a field of a JSON secret too', async () => {
    secretsManager.on(GetSecretValueCommand, { SecretId: 'ujr/collector' }).resolves({ SecretString: '{"apiKey":"k-1","user":"u"}' });

    const resolved = await resolveSecrets(
      { key: { $secret: 'secretsmanager:ujr/collector', field: 'apiKey' }, whole: { $secret: 'secretsmanager:ujr/collector' } },
      source,
      new SecretCache({ now: () => 0 }),
    );

    expect(resolved).toEqual({ key: 'k-1', whole: '{"apiKey":"k-1","user":"u"}' });
    expect(secretsManager.commandCalls(GetSecretValueCommand)).toHaveLength(1);
  });

  it('maps ResourceNotFoundException to SecretNotFoundError, named with the instance and path', async () => {
    secretsManager.on(GetSecretValueCommand).rejects(secretsError('ResourceNotFoundException', "Secrets Manager can't find the specified secret."));

    const error = await failure(
      resolveSecrets({ db: { password: { $secret: 'secretsmanager:ujr/db' } } }, source, new SecretCache(), { instanceId: 'collector-a' }),
    );

    expect(error).toBeInstanceOf(SecretNotFoundError);
    expect(error.message).toBe(
      'instance "collector-a", params.db.password ({ "$secret": "secretsmanager:ujr/db" }): Secrets Manager secret "ujr/db" does not exist ' +
        '(ResourceNotFoundException) in this account and region: create it (aws secretsmanager create-secret --name "ujr/db" --secret-string …) or fix the reference',
    );
  });

  it('maps AccessDeniedException to SecretAccessDeniedError naming secretsmanager:GetSecretValue and the secret ARN', async () => {
    secretsManager.on(GetSecretValueCommand).rejects(secretsError('AccessDeniedException', 'not authorized'));

    const error = await failure(source.get({ store: 'secretsmanager', id: 'ujr/db' }));

    expect(error).toBeInstanceOf(SecretAccessDeniedError);
    expect(error.message).toContain('grant it secretsmanager:GetSecretValue on arn:aws:secretsmanager:*:*:secret:ujr/db-??????');
    expect(isRetryable(error)).toBe(false);
  });

  it('names an ARN as it is in the access-denied advice', async () => {
    const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:ujr/db-AbCdEf';
    secretsManager.on(GetSecretValueCommand).rejects(secretsError('AccessDeniedException'));

    await expect(source.get({ store: 'secretsmanager', id: arn })).rejects.toThrow(`secretsmanager:GetSecretValue on ${arn} `);
  });

  it('maps DecryptionFailure to SecretAccessDeniedError naming kms:Decrypt', async () => {
    secretsManager.on(GetSecretValueCommand).rejects(secretsError('DecryptionFailure'));

    await expect(source.get({ store: 'secretsmanager', id: 'ujr/db' })).rejects.toThrow(SecretAccessDeniedError);
    await expect(source.get({ store: 'secretsmanager', id: 'ujr/db' })).rejects.toThrow(/needs kms:Decrypt on the secret's KMS key/);
  });

  it('says a secret scheduled for deletion is gone and how to restore it', async () => {
    secretsManager
      .on(GetSecretValueCommand)
      .rejects(secretsError('InvalidRequestException', "You can't perform this operation on the secret because it was marked for deletion."));

    const error = await failure(source.get({ store: 'secretsmanager', id: 'ujr/db' }));

    expect(error).toBeInstanceOf(SecretNotFoundError);
    expect(error.message).toContain('aws secretsmanager restore-secret --secret-id "ujr/db"');
  });

  it('refuses binary secrets, saying to store a string', async () => {
    secretsManager.on(GetSecretValueCommand).resolves({ SecretBinary: new Uint8Array([1, 2]) });

    await expect(source.get({ store: 'secretsmanager', id: 'bin' })).rejects.toThrow(SecretReferenceError);
  });

  it('maps an unexpected failure to a retryable SecretUnavailableError keeping the cause', async () => {
    const cause = secretsError('InternalServiceError', 'try again');
    secretsManager.on(GetSecretValueCommand).rejects(cause);

    const error = await failure(source.get({ store: 'secretsmanager', id: 'ujr/db' }));

    expect(error).toBeInstanceOf(SecretUnavailableError);
    expect(error.cause).toBe(cause);
    expect(isRetryable(error)).toBe(true);
  });
});
