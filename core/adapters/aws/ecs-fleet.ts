/**
 * The fleet on ECS Fargate: the conductor service's desired count (so an account without
 * continuous tasks runs no containers) and one-off tasks for batch tasks longer than Lambda allows.
 */
import { DescribeServicesCommand, RunTaskCommand, UpdateServiceCommand, type ECSClient } from '@aws-sdk/client-ecs';
import { RuntimeConfigError } from '../../cloud/errors.js';
import type { DispatchMessage } from '../../cloud/messages.js';
import type { Fleet } from '../../cloud/ports.js';

export interface EcsFleetOptions {
  client: ECSClient;
  cluster: string;
  conductorService: string;
  longTask?: {
    taskDefinition: string;
    containerName: string;
    subnets: string[];
    securityGroups: string[];
    assignPublicIp: boolean;
  };
}

/** The environment variable that hands a long task its dispatch message. */
export const TASK_MESSAGE_ENV = 'UJR_TASK_MESSAGE';

export class EcsFleet implements Fleet {
  constructor(private readonly options: EcsFleetOptions) {}

  async setConductors(count: number): Promise<void> {
    const { client, cluster, conductorService } = this.options;
    const described = await client.send(new DescribeServicesCommand({ cluster, services: [conductorService] }));
    const service = described.services?.[0];
    if (!service) {
      throw new RuntimeConfigError(`ECS service "${conductorService}" was not found in cluster "${cluster}" (${described.failures?.[0]?.reason ?? 'no such service'}); check UJR_CONDUCTOR_SERVICE`);
    }
    if (service.desiredCount === count) return;
    await client.send(new UpdateServiceCommand({ cluster, service: conductorService, desiredCount: count }));
  }

  async runLongTask(message: DispatchMessage): Promise<void> {
    const { client, cluster, longTask } = this.options;
    if (!longTask) {
      throw new RuntimeConfigError(
        `task "${message.task}" needs ${message.timeoutMs} ms, longer than the worker Lambda allows, and no long-task definition is configured (UJR_LONG_TASK_DEFINITION, UJR_SUBNETS)`,
      );
    }
    const result = await client.send(
      new RunTaskCommand({
        cluster,
        taskDefinition: longTask.taskDefinition,
        launchType: 'FARGATE',
        count: 1,
        startedBy: 'ujr-scheduler',
        networkConfiguration: {
          awsvpcConfiguration: {
            subnets: longTask.subnets,
            securityGroups: longTask.securityGroups,
            assignPublicIp: longTask.assignPublicIp ? 'ENABLED' : 'DISABLED',
          },
        },
        overrides: { containerOverrides: [{ name: longTask.containerName, environment: [{ name: TASK_MESSAGE_ENV, value: JSON.stringify(message) }] }] },
      }),
    );
    const failure = result.failures?.[0];
    if (failure || !result.tasks?.length) {
      throw new Error(`RunTask did not start a container: ${failure?.reason ?? 'no task returned'}${failure?.detail ? ` (${failure.detail})` : ''}`);
    }
  }
}
