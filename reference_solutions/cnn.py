"""DS5220 Problem Set 4, Problem 3 -- reference solution in module form.

CNN for MNIST: Conv2d(1, 10, 5) -> max_pool2d(2) -> ReLU -> Conv2d(10, 20, 5)
-> Dropout2d(0.5) -> max_pool2d(2) -> ReLU -> flatten (20*4*4 = 320)
-> Linear(320, 10) -> log_softmax(dim=1).

Problem 3 C) (3.3): number of trainable parameters (weights + biases)

CNN:
  conv1: 5*5*1*10   = 250 weights + 10 biases = 260
  conv2: 5*5*10*20  = 5,000 weights + 20 biases = 5,020
  fc:    320*10     = 3,200 weights + 10 biases = 3,210
  total: 250 + 10 + 5,000 + 20 + 3,200 + 10 = 8,490

MLP (Problem 2):
  fc1: 784*128 = 100,352 weights + 128 biases = 100,480
  fc2: 128*10  = 1,280 weights + 10 biases   = 1,290
  total: 100,352 + 128 + 1,280 + 10 = 101,770

The CNN has about 12x fewer parameters: its kernels are shared over all image
positions and pooling shrinks the feature maps before the fully connected layer.

Module-form contract: the grader imports this module and trains the model itself.
Nothing is loaded or trained at import time; ``python cnn.py`` trains on
``datasets.MNIST('data', ...)`` with the handout's hyperparameters.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class CNN(nn.Module):
    """Two conv layers + one fully connected layer; returns log-probabilities."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(p=0.5)
        self.fc = nn.Linear(320, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))                   # [B, 10, 12, 12]
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))  # [B, 20, 4, 4]
        x = torch.flatten(x, 1)                                      # [B, 320]
        return F.log_softmax(self.fc(x), dim=1)


def make_optimizer(model, lr):
    """The optimizer this solution was tuned with: SGD with momentum 0.9."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def train_one_epoch(train_loader, model, device, optimizer, log_interval, epoch):
    """One pass over ``train_loader``.

    Returns ``(losses, counter, num_correct_train)``: the training loss every
    ``log_interval`` batches, the number of training images seen at those points,
    and the number of correctly classified training images in this epoch.
    """
    model.train()
    losses = []
    counter = []
    num_correct_train = 0
    for i, (img, label) in enumerate(train_loader):
        img, label = img.to(device), label.to(device)
        optimizer.zero_grad()
        output = model(img)
        loss = F.nll_loss(output, label)
        loss.backward()
        optimizer.step()

        pred = output.argmax(dim=1, keepdim=True)
        num_correct_train += pred.eq(label.view_as(pred)).sum().item()

        if (i + 1) % log_interval == 0:
            losses.append(loss.item())
            counter.append(i * train_loader.batch_size + img.size(0)
                           + epoch * len(train_loader.dataset))
    return losses, counter, num_correct_train


def test_one_epoch(test_loader, model, device):
    """Returns ``(test_loss, num_correct)``: the mean NLL per test image and the
    number of correctly classified test images."""
    model.eval()
    test_loss = 0.0
    num_correct = 0
    with torch.no_grad():
        for img, label in test_loader:
            img, label = img.to(device), label.to(device)
            output = model(img)
            test_loss += F.nll_loss(output, label, reduction='sum').item()
            pred = output.argmax(dim=1, keepdim=True)
            num_correct += pred.eq(label.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    return test_loss, num_correct


def main():
    from torchvision import datasets, transforms

    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    seed, batch_size, lr, max_epochs, gamma, log_interval = 1234, 64, 0.01, 10, 0.95, 100
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.manual_seed(seed)

    transform = transforms.Compose([transforms.ToTensor()])
    train_data = datasets.MNIST('data', train=True, download=True, transform=transform)
    test_data = datasets.MNIST('data', train=False, download=True, transform=transform)
    train_loader = torch.utils.data.DataLoader(train_data, batch_size=batch_size, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_data, batch_size=batch_size, shuffle=False)

    model = CNN().to(device)
    print(f"Trainable parameters: {sum(p.numel() for p in model.parameters() if p.requires_grad)}")
    optimizer = make_optimizer(model, lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=gamma)
    num_correct_train = num_correct = 0
    for epoch in range(max_epochs):
        _, _, num_correct_train = train_one_epoch(train_loader, model, device, optimizer,
                                                  log_interval, epoch)
        test_loss, num_correct = test_one_epoch(test_loader, model, device)
        scheduler.step()
        print(f"epoch {epoch + 1}: test loss {test_loss:.4f}")
    print(f"Train accuracy: {num_correct_train / len(train_loader.dataset)}")
    print(f"Test accuracy: {num_correct / len(test_loader.dataset)}")


if __name__ == "__main__":
    main()
